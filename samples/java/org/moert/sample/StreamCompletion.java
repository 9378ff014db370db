package org.moert.sample;

import java.nio.file.Path;
import org.moert.GenerateOptions;
import org.moert.LoadOptions;
import org.moert.Model;
import org.moert.Stream;
import org.moert.Token;
import org.moert.Usage;

/** Streams a completion from the shipped moert-tiny-coder with the Java binding. */
public final class StreamCompletion {
    public static void main(String[] args) {
        String dir = System.getenv().getOrDefault("MOERT_MODEL_DIR", "samples/models/moert-tiny-coder");
        String prompt = args.length > 0 ? args[0] : "def fibonacci(n):\n";
        try (Model model = Model.load(Path.of(dir), new LoadOptions(), (f, stage) -> {
                 System.err.printf("\rloading %3.0f%% %-12s", f * 100, stage);
                 return false;
             });
             Stream stream = model.generate(prompt, new GenerateOptions().maxTokens(48).ignoreEos(true))) {
            System.err.println();
            System.out.print(prompt);
            for (Token t : stream) {
                System.out.print(t.text());
                System.out.flush();
            }
            Usage u = stream.usage();
            System.out.printf("%n--- finish: %s, %d prompt + %d generated tokens, %.1f tokens/s%n", stream.finishReason(),
                u.promptTokens(), u.generatedTokens(), u.tokensPerSecond());
        }
    }
}
