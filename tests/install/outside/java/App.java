import java.nio.file.Path;
import org.moert.GenerateOptions;
import org.moert.LoadOptions;
import org.moert.Model;
import org.moert.Stream;
import org.moert.Token;

/** An outside Java program: `java -cp moert.jar:app.jar App MODEL_DIR`, no -Djava.library.path. */
public final class App {
    public static void main(String[] args) {
        try (Model model = Model.load(Path.of(args[0]), new LoadOptions(), null);
             Stream stream = model.generate("def fibonacci(n):\n", new GenerateOptions().maxTokens(24).ignoreEos(true))) {
            int n = 0;
            for (Token t : stream) {
                System.out.print(t.text());
                n++;
            }
            System.out.printf("%nstreamed %d tokens%n", n);
            if (n == 0) System.exit(1);
        }
    }
}
