/* The one SWIG interface over moert.h, for Python and Java (Go uses cgo directly: see bindings/go/README.md).
 *
 * A whitelist: everything is ignored (%ignoreall), then the few names we expose are un-ignored and
 * renamed without the moert_ prefix. Handles become proxy classes (Model, Tokenizer, Session, Stream,
 * Options) whose factories are %newobject and whose *_free functions are %delobject, so each language's
 * garbage collector frees what the user forgot while close()/free() stays deterministic. One typemap
 * (moert_status out) turns a failed status into the language's error; the helpers below that compute a
 * value raise the same error through MoertFailure. The Python GIL is released on long calls only
 * (%thread). The thin idiomatic layers (bindings/python/moert, bindings/java/src/org/moert) are what
 * users import; this module is internal.
 */
%module(directors="1", threads="1") moert_native

%{
#include <moert/moert.h>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

/* A failed status on its way out of a helper; %exception turns it into the language's error. */
struct MoertFailure {
  moert_status status;
  std::string message;
};
static void moert_check(moert_status s) {
  if (s != MOERT_OK) throw MoertFailure{s, moert_last_error()};
}
%}

%include <stdint.i>
%include <std_string.i>

%feature("autodoc", "1");
/* Threads are on for the module but off for every call except the long ones marked with %feature("nothread", "0") below (Python's %thread). */
%feature("nothread");

/* ---- errors: one place per language ------------------------------------------------------------ */
#if defined(SWIGPYTHON)
%{
/* Raises moert._errors.error_for(status, message), the moert.Error subclass for the status. */
static void moert_raise(moert_status status, const std::string& message) {
  PyObject* mod = PyImport_ImportModule("moert._errors");
  if (!mod) return;
  PyObject* exc = PyObject_CallMethod(mod, "error_for", "is", (int)status, message.c_str());
  Py_DECREF(mod);
  if (!exc) return;
  PyErr_SetObject((PyObject*)Py_TYPE(exc), exc);
  Py_DECREF(exc);
}
%}
%typemap(out) moert_status {
  if ($1 != MOERT_OK) { moert_raise($1, moert_last_error()); SWIG_fail; }
  $result = SWIG_Py_Void();
}
%exception {
  try { $action }
  catch (const MoertFailure& e) { moert_raise(e.status, e.message); SWIG_fail; }
  catch (const Swig::DirectorException&) { SWIG_fail; }
  catch (const std::bad_alloc&) { moert_raise(MOERT_ERR_OUT_OF_MEMORY, "out of memory"); SWIG_fail; }
}
#elif defined(SWIGJAVA)
%{
/* Throws org.moert.MoertException.of(status, message) (the subclass for the status). */
static void moert_raise(JNIEnv* jenv, moert_status status, const std::string& message) {
  jclass cls = jenv->FindClass("org/moert/MoertException");
  if (!cls) return;
  jmethodID of = jenv->GetStaticMethodID(cls, "of", "(ILjava/lang/String;)Lorg/moert/MoertException;");
  if (!of) return;
  jstring msg = jenv->NewStringUTF(message.c_str());
  jobject exc = jenv->CallStaticObjectMethod(cls, of, (jint)status, msg);
  if (exc && !jenv->ExceptionCheck()) jenv->Throw((jthrowable)exc);
}
%}
%typemap(jni) moert_status "void"
%typemap(jtype) moert_status "void"
%typemap(jstype) moert_status "void"
%typemap(javaout) moert_status { $jnicall; }
%typemap(out) moert_status {
  if ($1 != MOERT_OK) { moert_raise(jenv, $1, moert_last_error()); return $null; }
}
%exception {
  try { $action }
  catch (const MoertFailure& e) { moert_raise(jenv, e.status, e.message); return $null; }
  catch (const Swig::DirectorException&) { return $null; }
  catch (const std::bad_alloc&) { moert_raise(jenv, MOERT_ERR_OUT_OF_MEMORY, "out of memory"); return $null; }
}
/* Java finalizers are not used: the org.moert layer registers a java.lang.ref.Cleaner as the fallback. */
%typemap(javafinalize) SWIGTYPE ""
#endif

/* ---- caller buffers for logits: a writable buffer (Python: numpy array; Java: float[]) -------- */
#if defined(SWIGPYTHON)
%typemap(in) (float* out, size_t out_cap) (Py_buffer view) {
  if (PyObject_GetBuffer($input, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) SWIG_fail;
  if (view.itemsize != 4 || !view.format || std::strcmp(view.format, "f") != 0) {
    PyBuffer_Release(&view);
    SWIG_exception_fail(SWIG_TypeError, "a C-contiguous float32 buffer is needed");
  }
  $1 = (float*)view.buf;
  $2 = (size_t)(view.len / 4);
}
%typemap(freearg) (float* out, size_t out_cap) { if ($1) PyBuffer_Release(&view$argnum); }
%typemap(in) const std::vector<int32_t>& (std::vector<int32_t> tmp) {
  PyObject* seq = PySequence_Fast($input, "a sequence of token ids is needed");
  if (!seq) SWIG_fail;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  tmp.resize((size_t)n);
  for (Py_ssize_t i = 0; i < n; ++i) {
    long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
    if (v == -1 && PyErr_Occurred()) { Py_DECREF(seq); SWIG_fail; }
    if (v < INT32_MIN || v > INT32_MAX) { Py_DECREF(seq); SWIG_exception_fail(SWIG_OverflowError, "token id out of range"); }
    tmp[(size_t)i] = (int32_t)v;
  }
  Py_DECREF(seq);
  $1 = &tmp;
}
%typemap(typecheck) const std::vector<int32_t>& { $1 = PySequence_Check($input) ? 1 : 0; }
%typemap(out) std::vector<int32_t> {
  const std::vector<int32_t>& v = $1;
  $result = PyList_New((Py_ssize_t)v.size());
  for (size_t i = 0; i < v.size(); ++i) PyList_SET_ITEM($result, (Py_ssize_t)i, PyLong_FromLong(v[i]));
}
%typemap(out) std::vector<float> {
  const std::vector<float>& v = $1;
  $result = PyList_New((Py_ssize_t)v.size());
  for (size_t i = 0; i < v.size(); ++i) PyList_SET_ITEM($result, (Py_ssize_t)i, PyFloat_FromDouble(v[i]));
}
#elif defined(SWIGJAVA)
%typemap(jni) (float* out, size_t out_cap) "jfloatArray"
%typemap(jtype) (float* out, size_t out_cap) "float[]"
%typemap(jstype) (float* out, size_t out_cap) "float[]"
%typemap(javain) (float* out, size_t out_cap) "$javainput"
%typemap(in) (float* out, size_t out_cap) {
  if (!$input) { SWIG_JavaThrowException(jenv, SWIG_JavaNullPointerException, "null array"); return $null; }
  $2 = (size_t)jenv->GetArrayLength($input);
  $1 = jenv->GetFloatArrayElements($input, 0);
}
%typemap(freearg) (float* out, size_t out_cap) { if ($1) jenv->ReleaseFloatArrayElements($input, $1, 0); }
%typemap(jni) const std::vector<int32_t>& "jintArray"
%typemap(jtype) const std::vector<int32_t>& "int[]"
%typemap(jstype) const std::vector<int32_t>& "int[]"
%typemap(javain) const std::vector<int32_t>& "$javainput"
%typemap(in) const std::vector<int32_t>& (std::vector<int32_t> tmp) {
  if (!$input) { SWIG_JavaThrowException(jenv, SWIG_JavaNullPointerException, "null array"); return $null; }
  tmp.resize((size_t)jenv->GetArrayLength($input));
  if (!tmp.empty()) jenv->GetIntArrayRegion($input, 0, (jsize)tmp.size(), (jint*)tmp.data());
  $1 = &tmp;
}
%typemap(jni) std::vector<int32_t> "jintArray"
%typemap(jtype) std::vector<int32_t> "int[]"
%typemap(jstype) std::vector<int32_t> "int[]"
%typemap(javaout) std::vector<int32_t> { return $jnicall; }
%typemap(out) std::vector<int32_t> {
  const std::vector<int32_t>& v = $1;
  $result = jenv->NewIntArray((jsize)v.size());
  if ($result && !v.empty()) jenv->SetIntArrayRegion($result, 0, (jsize)v.size(), (const jint*)v.data());
}
%typemap(jni) std::vector<float> "jfloatArray"
%typemap(jtype) std::vector<float> "float[]"
%typemap(jstype) std::vector<float> "float[]"
%typemap(javaout) std::vector<float> { return $jnicall; }
%typemap(out) std::vector<float> {
  const std::vector<float>& v = $1;
  $result = jenv->NewFloatArray((jsize)v.size());
  if ($result && !v.empty()) jenv->SetFloatArrayRegion($result, 0, (jsize)v.size(), v.data());
}
/* Strings cross as UTF-8 bytes so that nothing is lost to JNI's modified UTF-8. */
%typemap(jni) const std::string& BYTES "jbyteArray"
%typemap(jtype) const std::string& BYTES "byte[]"
%typemap(jstype) const std::string& BYTES "byte[]"
%typemap(javain) const std::string& BYTES "$javainput"
%typemap(in) const std::string& BYTES (std::string tmp) {
  if (!$input) { SWIG_JavaThrowException(jenv, SWIG_JavaNullPointerException, "null string"); return $null; }
  tmp.resize((size_t)jenv->GetArrayLength($input));
  if (!tmp.empty()) jenv->GetByteArrayRegion($input, 0, (jsize)tmp.size(), (jbyte*)&tmp[0]);
  $1 = &tmp;
}
%typemap(jni) std::string BYTES "jbyteArray"
%typemap(jtype) std::string BYTES "byte[]"
%typemap(jstype) std::string BYTES "byte[]"
%typemap(javaout) std::string BYTES { return $jnicall; }
%typemap(out) std::string BYTES {
  $result = jenv->NewByteArray((jsize)$1.size());
  if ($result && !$1.empty()) jenv->SetByteArrayRegion($result, 0, (jsize)$1.size(), (const jbyte*)$1.data());
}
#endif

/* ---- KV images: bytes in (Python: any bytes-like object; Java: byte[]) and out (bytes; byte[]) ------ */
#if defined(SWIGPYTHON)
%typemap(in) (const void* image, size_t image_size) (Py_buffer view) {
  if (PyObject_GetBuffer($input, &view, PyBUF_C_CONTIGUOUS) != 0) SWIG_fail;
  $1 = view.buf;
  $2 = (size_t)view.len;
}
%typemap(freearg) (const void* image, size_t image_size) { if ($1) PyBuffer_Release(&view$argnum); }
%typemap(typecheck) (const void* image, size_t image_size) { $1 = PyObject_CheckBuffer($input) ? 1 : 0; }
%typemap(out) std::string IMAGE { $result = PyBytes_FromStringAndSize($1.data(), (Py_ssize_t)$1.size()); }
#elif defined(SWIGJAVA)
%typemap(jni) (const void* image, size_t image_size) "jbyteArray"
%typemap(jtype) (const void* image, size_t image_size) "byte[]"
%typemap(jstype) (const void* image, size_t image_size) "byte[]"
%typemap(javain) (const void* image, size_t image_size) "$javainput"
%typemap(in) (const void* image, size_t image_size) {
  if (!$input) { SWIG_JavaThrowException(jenv, SWIG_JavaNullPointerException, "null array"); return $null; }
  $2 = (size_t)jenv->GetArrayLength($input);
  $1 = jenv->GetByteArrayElements($input, 0);
}
%typemap(freearg) (const void* image, size_t image_size) {
  if ($1) jenv->ReleaseByteArrayElements($input, (jbyte*)$1, JNI_ABORT);
}
%apply std::string BYTES { std::string IMAGE };
#endif

/* ---- the whitelist ------------------------------------------------------------------------------ */
/* SWIG 4.1 has no %ignoreall/%unignore macros in swig.swg: these are the documented forms. */
#define %unignore %rename("%s")
%rename("$ignore") "";

%rename(api_version) moert_api_version;
%rename(version_string) moert_version_string;
%rename(status_name) moert_status_name;
int32_t moert_api_version(void);
const char* moert_version_string(void);
const char* moert_status_name(int32_t status); /* int32_t here: the moert_status typemap is for results */

/* Load progress, as a director class the host language subclasses. It is called on the loading thread
 * only (with the GIL taken again in Python); it must not throw (the layers above catch for it).
 * Returning true cancels the load. */
%unignore ProgressListener;
%unignore ProgressListener::ProgressListener;
%unignore ProgressListener::~ProgressListener;
%unignore ProgressListener::on_progress;
%feature("director") ProgressListener;
/* The upcall takes the GIL again: model_load released it. */
%feature("nothread", "0") ProgressListener::on_progress;
%inline %{
struct ProgressListener {
  virtual ~ProgressListener() {}
  virtual bool on_progress(double fraction, const std::string& stage) { (void)fraction; (void)stage; return false; }
};
%}
%{
static int32_t moert_progress_trampoline(void* user_data, double fraction, const char* stage) {
  try {
    return static_cast<ProgressListener*>(user_data)->on_progress(fraction, stage ? stage : "") ? 1 : 0;
  } catch (...) {
    return 1; /* an exception cannot cross moert: cancel the load instead */
  }
}
%}

/* One generation event: the token (-1 for a final event without one), the finish reason and the text. */
%unignore StreamEvent;
%unignore StreamEvent::~StreamEvent;
%unignore StreamUsage::~StreamUsage;
%unignore StreamUsage;
%unignore StreamUsage::prompt_tokens;
%unignore StreamUsage::generated_tokens;
%unignore StreamUsage::time_to_first_token_s;
%unignore StreamUsage::tokens_per_second;
%unignore StreamUsage::cached_prompt_tokens;
%unignore StreamUsage::decode_forwards;
%unignore StreamUsage::draft_tokens;
%unignore StreamUsage::accepted_drafts;
%unignore StreamEvent::token;
%unignore StreamEvent::finish_reason;
%unignore StreamEvent::text;
#if defined(SWIGJAVA)
%apply std::string BYTES { std::string text };
/* A member getter goes through JNI's NewStringUTF, which mangles 4-byte UTF-8 (emoji): Java reads the
 * piece's bytes instead and decodes them as UTF-8 itself. */
%unignore StreamEvent::text_utf8;
%apply std::string BYTES { std::string text_utf8 };
%extend StreamEvent {
  std::string text_utf8() const { return $self->text; }
}
#endif
%inline %{
struct StreamEvent {
  int32_t token;
  int32_t finish_reason;
  std::string text;
};
struct StreamUsage {
  int64_t prompt_tokens;
  int64_t generated_tokens;
  double time_to_first_token_s;
  double tokens_per_second;
  /* moert_stream_counter's (API 3): prompt tokens from the prefix cache, main-model forwards after the
   * prompt, tokens the MTP module drafted, drafts the main model confirmed. */
  int64_t cached_prompt_tokens;
  int64_t decode_forwards;
  int64_t draft_tokens;
  int64_t accepted_drafts;
};
%}
#if defined(SWIGJAVA)
%clear std::string text;
%clear std::string text_utf8;
#endif

/* The handles, as proxy classes. The structs are opaque in C; SWIG only needs their names. */
%nodefaultctor moert_options;
%nodefaultctor moert_model;
%nodefaultctor moert_tokenizer;
%nodefaultctor moert_session;
%nodefaultctor moert_stream;
%nodefaultdtor moert_options;
%nodefaultdtor moert_model;
%nodefaultdtor moert_tokenizer;
%nodefaultdtor moert_session;
%nodefaultdtor moert_stream;
%rename(Options) moert_options;
%rename(Model) moert_model;
%rename(Tokenizer) moert_tokenizer;
%rename(Session) moert_session;
%rename(Stream) moert_stream;
struct moert_options {};
struct moert_model {};
struct moert_tokenizer {};
struct moert_session {};
struct moert_stream {};

/* The garbage collector's fallback (thisown): each proxy frees its handle when collected. */
%{
static void delete_moert_options(moert_options* p) { moert_options_free(p); }
static void delete_moert_model(moert_model* p) { moert_model_free(p); }
static void delete_moert_tokenizer(moert_tokenizer* p) { moert_tokenizer_free(p); }
static void delete_moert_session(moert_session* p) { moert_session_free(p); }
static void delete_moert_stream(moert_stream* p) { moert_stream_free(p); }
%}
%unignore moert_options::~moert_options;
%unignore moert_model::~moert_model;
%unignore moert_tokenizer::~moert_tokenizer;
%unignore moert_session::~moert_session;
%unignore moert_stream::~moert_stream;
%extend moert_options { ~moert_options(); }
%extend moert_model { ~moert_model(); }
%extend moert_tokenizer { ~moert_tokenizer(); }
%extend moert_session { ~moert_session(); }
%extend moert_stream { ~moert_stream(); }

/* Deterministic release: free(x) frees now and disowns the proxy (%delobject), so the collector does
 * not free it again. */
%delobject moert_options_free;
%delobject moert_model_free;
%delobject moert_tokenizer_free;
%delobject moert_session_free;
%delobject moert_stream_free;
%rename(options_free) moert_options_free;
%rename(model_free) moert_model_free;
%rename(tokenizer_free) moert_tokenizer_free;
%rename(session_free) moert_session_free;
%rename(stream_free) moert_stream_free;
void moert_options_free(moert_options* options);
void moert_model_free(moert_model* model);
void moert_tokenizer_free(moert_tokenizer* tokenizer);
void moert_session_free(moert_session* session);
void moert_stream_free(moert_stream* stream);

/* Status-returning functions wrapped as they are (the moert_status typemap raises). */
%rename(options_set_int) moert_options_set_int;
%rename(options_set_float) moert_options_set_float;
%rename(options_set_string) moert_options_set_string;
%rename(options_add_string) moert_options_add_string;
%rename(options_add_int) moert_options_add_int;
%rename(stream_cancel) moert_stream_cancel;
%rename(session_truncate) moert_session_truncate;
moert_status moert_options_set_int(moert_options* options, const char* key, int64_t value);
moert_status moert_options_set_float(moert_options* options, const char* key, double value);
moert_status moert_options_set_string(moert_options* options, const char* key, const char* value);
#if defined(SWIGJAVA)
%apply const std::string& BYTES { const std::string& utf8 };
#endif
%unignore options_add_string_utf8;
%inline %{
/* moert_options_add_string with UTF-8 bytes (Java's JNI strings are modified UTF-8). */
moert_status options_add_string_utf8(moert_options* options, const char* key, const std::string& utf8) {
  return moert_options_add_string(options, key, utf8.c_str());
}
%}
moert_status moert_options_add_string(moert_options* options, const char* key, const char* value);
moert_status moert_options_add_int(moert_options* options, const char* key, int64_t value);
moert_status moert_stream_cancel(moert_stream* stream);
moert_status moert_session_truncate(moert_session* session, int64_t length);

/* Helpers over the two-call buffer protocol and out-parameters; they raise through MoertFailure. The
 * handles they return are new objects the caller owns. */
%newobject options_create;
%newobject model_load;
%newobject model_tokenizer;
%newobject tokenizer_load;
%newobject session_create;
%newobject generate_tokens;
%newobject generate_text;
%newobject generate_chat;
%newobject session_import;
%newobject generate_resume;
%feature("nothread", "0") model_load;
%feature("nothread", "0") model_logits;
%feature("nothread", "0") session_eval;
%feature("nothread", "0") generate_tokens;
%feature("nothread", "0") generate_text;
%feature("nothread", "0") generate_chat;
%feature("nothread", "0") session_export;
%feature("nothread", "0") session_import;
%feature("nothread", "0") generate_resume;
%feature("nothread", "0") stream_next;
%feature("nothread", "0") tokenize;
%feature("nothread", "0") detokenize;
%unignore options_create;
%unignore model_load;
%unignore model_info_int;
%unignore model_config_json;
%unignore model_logits;
%unignore model_tokenizer;
%unignore tokenizer_load;
%unignore tokenizer_info_int;
%unignore tokenize;
%unignore detokenize;
%unignore apply_chat_template;
%unignore session_create;
%unignore session_eval;
%unignore session_length;
%unignore generate_tokens;
%unignore generate_text;
%unignore generate_chat;
%unignore stream_next;
%unignore stream_usage;
%unignore stream_error;
%unignore stream_info_int;
%unignore stream_counter;
%unignore stream_logprob_ids;
%unignore stream_logprob_values;
%unignore session_export;
%unignore session_import;
%unignore generate_resume;
%unignore last_error;
#if defined(SWIGJAVA)
%apply const std::string& BYTES { const std::string& text, const std::string& prompt, const std::string& messages_json };
%apply std::string BYTES { std::string detokenize, std::string apply_chat_template, std::string model_config_json, std::string stream_error };
#endif
%inline %{
moert_options* options_create() {
  moert_options* o = nullptr;
  moert_check(moert_options_create(&o));
  return o;
}
/* listener may be null; options may be null (defaults). */
moert_model* model_load(const char* model_dir, const moert_options* options, ProgressListener* listener) {
  moert_model* m = nullptr;
  moert_check(moert_model_load(model_dir, options, listener ? moert_progress_trampoline : nullptr, listener, &m));
  return m;
}
int64_t model_info_int(const moert_model* model, const char* key) {
  int64_t v = 0;
  moert_check(moert_model_info_int(model, key, &v));
  return v;
}
std::string model_config_json(const moert_model* model) {
  size_t need = 0;
  moert_check(moert_model_config_json(model, nullptr, 0, &need));
  std::string s(need, '\0');
  moert_check(moert_model_config_json(model, &s[0], s.size(), &need));
  s.resize(std::strlen(s.c_str()));
  return s;
}
/* n rows of vocab_size floats into out. */
void model_logits(moert_model* model, const std::vector<int32_t>& tokens, float* out, size_t out_cap) {
  moert_check(moert_model_logits(model, tokens.data(), tokens.size(), out, out_cap));
}
moert_tokenizer* model_tokenizer(const moert_model* model) {
  moert_tokenizer* t = nullptr;
  moert_check(moert_model_tokenizer(model, &t));
  return t;
}
moert_tokenizer* tokenizer_load(const char* tokenizer_json_path, const char* config_path) {
  moert_tokenizer* t = nullptr;
  moert_check(moert_tokenizer_load(tokenizer_json_path, config_path, &t));
  return t;
}
int64_t stream_info_int(const moert_stream* stream, const char* key) {
  int64_t v = 0;
  moert_check(moert_stream_info_int(stream, key, &v));
  return v;
}
int64_t tokenizer_info_int(const moert_tokenizer* tokenizer, const char* key) {
  int64_t v = 0;
  moert_check(moert_tokenizer_info_int(tokenizer, key, &v));
  return v;
}
std::vector<int32_t> tokenize(const moert_tokenizer* tokenizer, const std::string& text, int32_t add_bos,
                              int32_t parse_special) {
  size_t n = 0;
  moert_check(moert_tokenize(tokenizer, text.data(), text.size(), add_bos, parse_special, nullptr, 0, &n));
  std::vector<int32_t> ids(n);
  moert_check(moert_tokenize(tokenizer, text.data(), text.size(), add_bos, parse_special, ids.data(), n, &n));
  ids.resize(n);
  return ids;
}
std::string detokenize(const moert_tokenizer* tokenizer, const std::vector<int32_t>& ids, int32_t skip_special) {
  size_t need = 0;
  moert_check(moert_detokenize(tokenizer, ids.data(), ids.size(), skip_special, nullptr, 0, &need));
  std::string s(need, '\0');
  moert_check(moert_detokenize(tokenizer, ids.data(), ids.size(), skip_special, &s[0], s.size(), &need));
  s.resize(need ? need - 1 : 0);
  return s;
}
std::string apply_chat_template(const moert_tokenizer* tokenizer, const std::string& messages_json,
                                int32_t add_generation_prompt) {
  size_t need = 0;
  moert_check(moert_apply_chat_template(tokenizer, messages_json.c_str(), add_generation_prompt, nullptr, 0, &need));
  std::string s(need, '\0');
  moert_check(moert_apply_chat_template(tokenizer, messages_json.c_str(), add_generation_prompt, &s[0], s.size(), &need));
  s.resize(need ? need - 1 : 0);
  return s;
}
moert_session* session_create(moert_model* model) {
  moert_session* s = nullptr;
  moert_check(moert_session_create(model, &s));
  return s;
}
void session_eval(moert_session* session, const std::vector<int32_t>& tokens, int32_t all_logits, float* out,
                  size_t out_cap) {
  moert_check(moert_session_eval(session, tokens.data(), tokens.size(), all_logits, out, out_cap));
}
int64_t session_length(const moert_session* session) {
  int64_t v = 0;
  moert_check(moert_session_length(session, &v));
  return v;
}
moert_stream* generate_tokens(moert_model* model, const std::vector<int32_t>& prompt, const moert_options* gen) {
  moert_stream* s = nullptr;
  moert_check(moert_generate_tokens(model, prompt.data(), prompt.size(), gen, &s));
  return s;
}
moert_stream* generate_text(moert_model* model, const std::string& prompt, const moert_options* gen) {
  moert_stream* s = nullptr;
  moert_check(moert_generate_text(model, prompt.c_str(), gen, &s));
  return s;
}
moert_stream* generate_chat(moert_model* model, const std::string& messages_json, const moert_options* gen) {
  moert_stream* s = nullptr;
  moert_check(moert_generate_chat(model, messages_json.c_str(), gen, &s));
  return s;
}
/* The next event with its text piece; TIMEOUT is raised as the language's timeout error. */
StreamEvent stream_next(moert_stream* stream, int32_t timeout_ms) {
  StreamEvent e{-1, 0, std::string()};
  moert_check(moert_stream_next(stream, timeout_ms, &e.token, &e.finish_reason));
  size_t need = 0;
  moert_check(moert_stream_text(stream, nullptr, 0, &need));
  if (need > 1) {
    e.text.assign(need, '\0');
    moert_check(moert_stream_text(stream, &e.text[0], e.text.size(), &need));
    e.text.resize(need - 1);
  }
  return e;
}
StreamUsage stream_usage(const moert_stream* stream) {
  StreamUsage u{0, 0, 0.0, 0.0, 0, 0, 0, 0};
  moert_check(moert_stream_usage(stream, &u.prompt_tokens, &u.generated_tokens, &u.time_to_first_token_s,
                                 &u.tokens_per_second));
  moert_check(moert_stream_counter(stream, "cached_prompt_tokens", &u.cached_prompt_tokens));
  moert_check(moert_stream_counter(stream, "decode_forwards", &u.decode_forwards));
  moert_check(moert_stream_counter(stream, "draft_tokens", &u.draft_tokens));
  moert_check(moert_stream_counter(stream, "accepted_drafts", &u.accepted_drafts));
  return u;
}
int64_t stream_counter(const moert_stream* stream, const char* key) {
  int64_t v = 0;
  moert_check(moert_stream_counter(stream, key, &v));
  return v;
}
/* moert_stream_logprobs of the event last read, in two parts: the most likely tokens' ids, and the values
 * (the token's own first, then the most likely tokens', in the ids' order). */
std::vector<int32_t> stream_logprob_ids(const moert_stream* stream) {
  size_t n = 0;
  moert_check(moert_stream_logprobs(stream, nullptr, nullptr, nullptr, 0, &n));
  std::vector<int32_t> ids(n);
  moert_check(moert_stream_logprobs(stream, nullptr, ids.data(), nullptr, n, &n));
  return ids;
}
std::vector<float> stream_logprob_values(const moert_stream* stream) {
  size_t n = 0;
  float own = 0.0f;
  moert_check(moert_stream_logprobs(stream, &own, nullptr, nullptr, 0, &n));
  std::vector<float> v(n + 1);
  v[0] = own;
  moert_check(moert_stream_logprobs(stream, nullptr, nullptr, v.data() + 1, n, &n));
  return v;
}
%}
%apply std::string IMAGE { std::string session_export };
%inline %{
/* The session's KV image (moert_session_export's required-size protocol). */
std::string session_export(const moert_session* session) {
  size_t need = 0;
  moert_check(moert_session_export(session, nullptr, 0, &need));
  std::string s(need, '\0');
  moert_check(moert_session_export(session, need ? &s[0] : nullptr, s.size(), &need));
  s.resize(need);
  return s;
}
moert_session* session_import(moert_model* model, const void* image, size_t image_size) {
  moert_session* s = nullptr;
  moert_check(moert_session_import(model, image, image_size, &s));
  return s;
}
moert_stream* generate_resume(moert_model* model, const void* image, size_t image_size, const moert_options* gen) {
  moert_stream* s = nullptr;
  moert_check(moert_generate_resume(model, image, image_size, gen, &s));
  return s;
}
std::string stream_error(const moert_stream* stream) {
  size_t need = 0;
  moert_check(moert_stream_error(stream, nullptr, 0, &need));
  std::string s(need, '\0');
  moert_check(moert_stream_error(stream, &s[0], s.size(), &need));
  s.resize(need ? need - 1 : 0);
  return s;
}
std::string last_error() { return moert_last_error(); }
%}
#if defined(SWIGJAVA)
%clear const std::string& text;
%clear const std::string& prompt;
%clear const std::string& messages_json;
#endif
