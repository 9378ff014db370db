package org.moert;

import java.lang.ref.Cleaner;

/** A native handle: close() frees it now; a Cleaner frees it if it becomes unreachable first. */
abstract class Handle implements AutoCloseable {
    private final Cleaner.Cleanable cleanable;
    private volatile boolean closed;

    Handle(Runnable free) {
        Native.init();
        this.cleanable = Native.CLEANER.register(this, free);
    }

    void ensureOpen() {
        if (closed) throw new MoertException(MoertException.Status.INVALID_ARGUMENT, getClass().getSimpleName() + " is closed");
    }

    public boolean isClosed() {
        return closed;
    }

    /** Frees the native handle (idempotent). */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            cleanable.clean();
        }
    }
}
