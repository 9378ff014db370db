package org.moert;

/** Why a stream ended (NONE while running). */
public enum FinishReason {
    NONE, LENGTH, STOP, EOS, CANCELLED, ERROR;

    static FinishReason of(int code) {
        return code >= 0 && code < values().length ? values()[code] : ERROR;
    }
}
