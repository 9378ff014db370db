//! An outside Rust program using moert found through pkg-config (no MOERT_LIB_DIR, no LD_LIBRARY_PATH).
use std::io::Write;

fn main() -> Result<(), moert::Error> {
    let dir = std::env::args().nth(1).expect("usage: moert-outside MODEL_DIR");
    let model = moert::Model::load(&dir)?;
    let mut stream = model.generate("def fibonacci(n):\n", &moert::GenerateOptions::new().max_tokens(24).ignore_eos(true))?;
    let mut n = 0;
    for token in &mut stream {
        print!("{}", token?.text);
        std::io::stdout().flush().ok();
        n += 1;
    }
    println!("\nstreamed {n} tokens");
    assert!(n > 0);
    Ok(())
}
