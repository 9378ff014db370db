//! Streams a completion from the shipped moert-tiny-coder with the Rust binding.
//!
//!     cargo run --manifest-path samples/rust/Cargo.toml       (moert installed: pkg-config finds it)
//!     MOERT_LIB_DIR=build/capi cargo run --manifest-path ...   (a build tree)
use std::io::Write;

fn main() -> Result<(), moert::Error> {
    let dir = std::env::var("MOERT_MODEL_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../models/moert-tiny-coder").to_owned());
    let prompt = std::env::args().nth(1).unwrap_or_else(|| "def fibonacci(n):\n".to_owned());
    let mut bar = |fraction: f64, stage: &str| {
        eprint!("\rloading {:3.0}% {:<12}", fraction * 100.0, stage);
        false
    };
    let model = moert::Model::load_with(&dir, &moert::LoadOptions::new(), Some(&mut bar))?;
    eprintln!();
    let options = moert::GenerateOptions::new().max_tokens(48).ignore_eos(true);
    let mut stream = model.generate(&prompt, &options)?;
    print!("{}", prompt);
    for token in &mut stream {
        print!("{}", token?.text);
        std::io::stdout().flush().ok();
    }
    let u = stream.usage()?;
    println!(
        "\n--- finish: {:?}, {} prompt + {} generated tokens, {:.1} tokens/s",
        stream.finish_reason().unwrap(),
        u.prompt_tokens,
        u.generated_tokens,
        u.tokens_per_second
    );
    Ok(())
}
