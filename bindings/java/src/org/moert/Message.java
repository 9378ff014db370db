package org.moert;

import java.util.List;

/** One chat message. */
public record Message(String role, String content) {
    public static Message user(String content) { return new Message("user", content); }
    public static Message system(String content) { return new Message("system", content); }
    public static Message assistant(String content) { return new Message("assistant", content); }

    static String toJson(List<Message> messages) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < messages.size(); i++) {
            if (i > 0) b.append(',');
            b.append("{\"role\":");
            quote(b, messages.get(i).role());
            b.append(",\"content\":");
            quote(b, messages.get(i).content());
            b.append('}');
        }
        return b.append(']').toString();
    }

    private static void quote(StringBuilder b, String s) {
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
            }
        }
        b.append('"');
    }
}
