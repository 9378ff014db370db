package org.moert;

/** A failed moert call: {@link #status()} says which kind, the message is moert's. */
public class MoertException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final Status status;

    public MoertException(Status status, String message) {
        super(status + ": " + message);
        this.status = status;
    }

    /** The kind of failure. */
    public Status status() {
        return status;
    }

    /** Called by the native layer for a failed moert_status. */
    public static MoertException of(int status, String message) {
        return new MoertException(Status.of(status), message);
    }

    /** moert_status values. */
    public enum Status {
        OK(0), INVALID_ARGUMENT(1), IO(2), FORMAT(3), UNSUPPORTED(4), OUT_OF_MEMORY(5), DEVICE(6), CANCELLED(7),
        INTERNAL(8), TIMEOUT(9),
        /** A stream that finished with MOERT_FINISH_ERROR (it failed alone). */
        GENERATION(-1),
        /** A status this binding does not know. */
        UNKNOWN(-2);

        public final int code;

        Status(int code) {
            this.code = code;
        }

        static Status of(int code) {
            for (Status s : values()) if (s.code == code) return s;
            return UNKNOWN;
        }
    }
}
