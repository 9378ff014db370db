package org.moert;

import java.lang.ref.Cleaner;

/** Loads the JNI library and holds the Cleaner that frees what was not closed. */
final class Native {
    static final Cleaner CLEANER = Cleaner.create();

    static {
        String path = System.getProperty("moert.jni.path");
        if (path != null) System.load(path);
        else System.loadLibrary("moert_jni");
    }

    static void init() {}

    private Native() {}
}
