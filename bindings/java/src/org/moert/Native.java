package org.moert;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.lang.ref.Cleaner;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Loads the JNI library and libmoert on first use, and holds the Cleaner that frees what was not closed.
 *
 * <p>Where from, in this order: {@code -Dmoert.library.path=DIR} (a folder holding libmoert_jni.so and
 * libmoert.so.0); {@code -Dmoert.jni.path=FILE} (the JNI library itself); the jar's resources for this
 * platform ({@code org/moert/native/<os>-<arch>/}, listed in its {@code files.txt}), extracted to a private
 * temporary folder (libmoert's provider libraries ride along, since libmoert looks for them beside itself);
 * else {@code java.library.path}. When none fits, the error names the platform.
 */
final class Native {
    static final Cleaner CLEANER = Cleaner.create();
    private static final String JNI = System.mapLibraryName("moert_jni");
    private static final String LIBMOERT = System.mapLibraryName("moert") + ".0";

    static {
        load();
    }

    static void init() {}

    /** linux-x86_64, linux-aarch64, ... as the jar's resource folders are named. */
    static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase();
        String arch = System.getProperty("os.arch", "").toLowerCase();
        if (os.startsWith("linux")) os = "linux";
        else if (os.startsWith("mac")) os = "macos";
        else if (os.startsWith("windows")) os = "windows";
        if (arch.equals("amd64") || arch.equals("x86-64")) arch = "x86_64";
        else if (arch.equals("arm64")) arch = "aarch64";
        return os + "-" + arch;
    }

    private static void load() {
        String dir = System.getProperty("moert.library.path");
        if (dir != null) {
            loadFrom(new File(dir));
            return;
        }
        String jni = System.getProperty("moert.jni.path");
        if (jni != null) {
            System.load(new File(jni).getAbsolutePath());
            return;
        }
        String platform = platform();
        String base = "/org/moert/native/" + platform + "/";
        List<String> files = resourceList(base + "files.txt");
        if (files != null) {
            loadFrom(extract(base, files));
            return;
        }
        try {
            System.loadLibrary("moert_jni");
        } catch (UnsatisfiedLinkError e) {
            UnsatisfiedLinkError err = new UnsatisfiedLinkError("moert: this jar has no native library for "
                    + platform + " (resources " + base + "), and " + JNI + " is not on java.library.path ("
                    + e.getMessage() + "); build moert for " + platform
                    + " or set -Dmoert.library.path=DIR to the folder holding " + JNI + " and " + LIBMOERT);
            err.initCause(e);
            throw err;
        }
    }

    // libmoert first: the JNI library's dependency is then satisfied by the copy already loaded.
    private static void loadFrom(File dir) {
        File lib = new File(dir, LIBMOERT);
        if (lib.isFile()) System.load(lib.getAbsolutePath());
        System.load(new File(dir, JNI).getAbsolutePath());
    }

    private static List<String> resourceList(String name) {
        InputStream in = Native.class.getResourceAsStream(name);
        if (in == null) return null;
        List<String> files = new ArrayList<>();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; )
                if (!line.isBlank()) files.add(line.strip());
        } catch (IOException e) {
            throw new UnsatisfiedLinkError("moert: cannot read " + name + ": " + e);
        }
        return files;
    }

    // A fresh folder only this user can read (createTempDirectory gives rwx------), removed at exit.
    private static File extract(String base, List<String> files) {
        try {
            Path dir = Files.createTempDirectory("moert-native-");
            dir.toFile().deleteOnExit();
            for (String f : files) {
                Path out = dir.resolve(f);
                try (InputStream in = Native.class.getResourceAsStream(base + f)) {
                    if (in == null) throw new IOException("resource " + base + f + " missing");
                    Files.copy(in, out, StandardCopyOption.REPLACE_EXISTING);
                }
                out.toFile().deleteOnExit();
            }
            return dir.toFile();
        } catch (IOException e) {
            throw new UnsatisfiedLinkError("moert: cannot extract the native libraries: " + e);
        }
    }

    private Native() {}
}
