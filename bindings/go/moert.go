// Package moert runs DeepSeek-V3-architecture Mixture-of-Experts models in-process (cgo over moert.h).
//
//	model, err := moert.Load("samples/models/moert-tiny-coder", nil)
//	if err != nil { ... }
//	defer model.Close()
//	stream, err := model.Generate(ctx, "def fibonacci(n):\n", &moert.GenerateOptions{MaxTokens: 32})
//	defer stream.Close()
//	for stream.Next() {
//		fmt.Print(stream.Token().Text)
//	}
//	if err := stream.Err(); err != nil { ... }
//
// Threading follows moert.h: a Model and a Tokenizer may be used by any number of goroutines; a Session
// or a Stream by one goroutine at a time; Stream.Cancel and context cancellation work from anywhere.
// Close frees a handle now; a finalizer frees what was not closed.
//
// This binding uses cgo directly rather than SWIG's Go output: SWIG's Go proxies are interfaces with
// Swigcptr methods and no error returns, and need SWIG's generated C++ wrapper compiled into the package,
// while cgo over the C header gives error returns, io-style iteration and context cancellation with no
// generated code and no build step beyond `go build`.
//
// Install: moert's C library from its package or `cmake --install` (which writes moert.pc; set
// PKG_CONFIG_PATH to its lib/pkgconfig for a private prefix), then
//
//	go get github.com/moert/moert/bindings/go
//
// cgo asks pkg-config for the flags; moert.pc's rpath lets the program find libmoert at run time.
package moert

/*
#cgo pkg-config: moert
#include <stdlib.h>
#include <moert/moert.h>

extern int32_t moertGoProgress(void* user_data, double fraction, char* stage);
*/
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/cgo"
	"strconv"
	"sync"
	"time"
	"unsafe"
)

// Status is a moert_status: the kind of a failure.
type Status int

const (
	StatusOK              Status = C.MOERT_OK
	StatusInvalidArgument Status = C.MOERT_ERR_INVALID_ARGUMENT
	StatusIO              Status = C.MOERT_ERR_IO
	StatusFormat          Status = C.MOERT_ERR_FORMAT
	StatusUnsupported     Status = C.MOERT_ERR_UNSUPPORTED
	StatusOutOfMemory     Status = C.MOERT_ERR_OUT_OF_MEMORY
	StatusDevice          Status = C.MOERT_ERR_DEVICE
	StatusCancelled       Status = C.MOERT_ERR_CANCELLED
	StatusInternal        Status = C.MOERT_ERR_INTERNAL
	StatusTimeout         Status = C.MOERT_ERR_TIMEOUT
	// StatusGeneration: a stream that finished with MOERT_FINISH_ERROR (it failed alone).
	StatusGeneration Status = 1000
)

func (s Status) String() string {
	if s == StatusGeneration {
		return "MOERT_FINISH_ERROR"
	}
	return C.GoString(C.moert_status_name(C.moert_status(s)))
}

// Error is a failed moert call. Compare kinds with errors.Is(err, moert.ErrIO) etc.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("moert: %s: %s", e.Status, e.Message) }

// Is matches another *Error of the same Status (so errors.Is(err, moert.ErrInvalidArgument) works).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status && (t.Message == "" || t.Message == e.Message)
}

// Sentinels for errors.Is.
var (
	ErrInvalidArgument = &Error{Status: StatusInvalidArgument}
	ErrIO              = &Error{Status: StatusIO}
	ErrFormat          = &Error{Status: StatusFormat}
	ErrUnsupported     = &Error{Status: StatusUnsupported}
	ErrOutOfMemory     = &Error{Status: StatusOutOfMemory}
	ErrDevice          = &Error{Status: StatusDevice}
	ErrCancelled       = &Error{Status: StatusCancelled}
	ErrInternal        = &Error{Status: StatusInternal}
	ErrTimeout         = &Error{Status: StatusTimeout}
	ErrGeneration      = &Error{Status: StatusGeneration}
)

// check turns a status into an error. The goroutine is locked to its thread around the C call and this
// read, since moert_last_error is per thread: callers use call().
func check(s C.moert_status) error {
	if s == C.MOERT_OK {
		return nil
	}
	return &Error{Status: Status(s), Message: C.GoString(C.moert_last_error())}
}

// call runs f (one moert call) and reads its error on the same OS thread.
func call(f func() C.moert_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return check(f())
}

// readString reads a NUL-terminated result with the two-call size protocol.
func readString(f func(buf *C.char, cap C.size_t, need *C.size_t) C.moert_status) (string, error) {
	var need C.size_t
	if err := call(func() C.moert_status { return f(nil, 0, &need) }); err != nil {
		return "", err
	}
	if need <= 1 {
		return "", nil
	}
	buf := (*C.char)(C.malloc(need))
	defer C.free(unsafe.Pointer(buf))
	if err := call(func() C.moert_status { return f(buf, need, &need) }); err != nil {
		return "", err
	}
	return C.GoString(buf), nil
}

// APIVersion is MOERT_API_VERSION of the library loaded.
func APIVersion() int { return int(C.moert_api_version()) }

// Version is the library version, e.g. "0.1.0".
func Version() string { return C.GoString(C.moert_version_string()) }

// ---- options ----

type options struct{ raw *C.moert_options }

func newOptions() (*options, error) {
	o := &options{}
	if err := call(func() C.moert_status { return C.moert_options_create(&o.raw) }); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *options) free() { C.moert_options_free(o.raw) }

func (o *options) setInt(key string, v int64) error {
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	return call(func() C.moert_status { return C.moert_options_set_int(o.raw, k, C.int64_t(v)) })
}

// setBool sets an int key to 0 or 1; nil leaves it unset.
func (o *options) setBool(key string, v *bool) error {
	if v == nil {
		return nil
	}
	i := int64(0)
	if *v {
		i = 1
	}
	return o.setInt(key, i)
}

func (o *options) setFloat(key string, v float64) error {
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	return call(func() C.moert_status { return C.moert_options_set_float(o.raw, k, C.double(v)) })
}

func (o *options) setString(key, v string) error {
	k, cv := C.CString(key), C.CString(v)
	defer C.free(unsafe.Pointer(k))
	defer C.free(unsafe.Pointer(cv))
	return call(func() C.moert_status { return C.moert_options_set_string(o.raw, k, cv) })
}

func (o *options) addString(key, v string) error {
	k, cv := C.CString(key), C.CString(v)
	defer C.free(unsafe.Pointer(k))
	defer C.free(unsafe.Pointer(cv))
	return call(func() C.moert_status { return C.moert_options_add_string(o.raw, k, cv) })
}

func (o *options) addInt(key string, v int64) error {
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	return call(func() C.moert_status { return C.moert_options_add_int(o.raw, k, C.int64_t(v)) })
}

// LoadOptions configures Load; zero values and nil pointers keep moert's defaults (see "Model load keys"
// in moert.h).
type LoadOptions struct {
	Threads      int    // CPU threads (0 = all cores)
	Device       string // "cpu" or "cuda"
	Activations  string // "fp32" or "fp8"
	KVCacheBytes int64
	MaxBatch     int
	// BatchInvariant: a request's logits (so its sampled tokens for a seed) are the same bits whatever is
	// batched with it, however its prompt is chunked, and with expert parallelism or not; decode is slower.
	// CPU only (ErrUnsupported with Device "cuda").
	BatchInvariant bool
	// EPSize: expert parallelism, the ranks the routed experts are spread over (0 = moert's default, 1 =
	// off). One rank per process under MPI (mpirun -np N with EPSize N).
	EPSize int
	// EPTransport: "none" (the default with EPSize 1), "inproc" (a one-rank in-process group: the EP code
	// path in one process), "mpi" (the default with EPSize > 1) or "nccl" (GPU ranks); "" = default.
	EPTransport  string
	EPRedundant  int   // redundant expert slots per rank (default 0)
	EPLBInterval int64 // engine steps between EPLB re-placements (0 = never, the default)
	// EPOverlap forces the two-microbatch overlap on (Bool(true)) or off (Bool(false)); nil lets moert
	// decide (on unless every rank is on one host). Model.Info("ep_overlap") says what is in effect.
	EPOverlap *bool
	// EPMaxRanksPerToken: spread a token's experts over at most this many ranks where replicas allow
	// (0 = no preference, the default).
	EPMaxRanksPerToken int
	// EPTimeoutMS: longest wait for the other ranks in one exchange, in milliseconds (0 = moert's default,
	// 60000).
	EPTimeoutMS int64
	// PrefixCache turns the prefix cache off (Bool(false)) or on (Bool(true)); nil keeps moert's default
	// (on): requests whose prompts share a prefix reuse the KV pages (whole 64-token pages) an earlier
	// request computed, with the same logits. Usage.CachedPromptTokens says how many a request took.
	PrefixCache *bool
	// Speculative: "on" (MTP speculative decoding when the checkpoint has the MTP module; greedy output is
	// unchanged, sampled output keeps the model's distribution), "auto" (moert's default: on with device
	// "cuda", off on the CPU, where it decodes slower) or "off"; "" = default. Usage.DraftTokens and Usage.AcceptedDrafts count the drafts.
	Speculative string
	// DraftTokens: drafts per decode step, 1 to 3 (0 = moert's default, 1).
	DraftTokens int
	// Attention: the MLA form, "auto" (the default), "expanded" or "absorbed" (for testing); "" = default.
	Attention string
	// MTP: load the MTP module when the checkpoint has one; nil keeps moert's default (true).
	MTP *bool
	// CheckWeights: the load-time scan of every weight for NaN/Inf (and FP8 NaN bytes, bad block scales),
	// ErrFormat naming the file and tensor; Bool(false) skips it; nil keeps moert's default (on).
	CheckWeights *bool
	// CUDAGraphs: with Device "cuda", decode steps replayed as CUDA graphs; nil keeps moert's default (on).
	CUDAGraphs *bool
	// KVCacheDtype: the latent cache's storage, "auto" (the default: bf16 with Device "cuda", fp32 on the
	// CPU), "fp32" or "bf16" (ErrUnsupported on the CPU); "" = default.
	KVCacheDtype string
	// ActivationDtype: the storage of activations between ops, "auto" (the default: bf16 with Device
	// "cuda", fp32 on the CPU), "fp32" or "bf16" (ErrUnsupported on the CPU); the math is fp32 either way;
	// "" = default.
	ActivationDtype string
	// Progress, when set, is called on the loading goroutine with fraction in [0, 1] and a stage name;
	// returning true cancels the load (Load then returns ErrCancelled).
	Progress func(fraction float64, stage string) bool
}

func (l *LoadOptions) build() (*options, error) {
	o, err := newOptions()
	if err != nil {
		return nil, err
	}
	if l == nil {
		return o, nil
	}
	var errs []error
	add := func(e error) { errs = append(errs, e) }
	if l.Threads != 0 {
		add(o.setInt("threads", int64(l.Threads)))
	}
	if l.Device != "" {
		add(o.setString("device", l.Device))
	}
	if l.Activations != "" {
		add(o.setString("activations", l.Activations))
	}
	if l.KVCacheBytes != 0 {
		add(o.setInt("kv_cache_bytes", l.KVCacheBytes))
	}
	if l.MaxBatch != 0 {
		add(o.setInt("max_batch", int64(l.MaxBatch)))
	}
	if l.BatchInvariant {
		add(o.setInt("batch_invariant", 1))
	}
	if l.EPSize != 0 {
		add(o.setInt("ep_size", int64(l.EPSize)))
	}
	if l.EPTransport != "" {
		add(o.setString("ep_transport", l.EPTransport))
	}
	if l.EPRedundant != 0 {
		add(o.setInt("ep_redundant", int64(l.EPRedundant)))
	}
	if l.EPLBInterval != 0 {
		add(o.setInt("eplb_interval", l.EPLBInterval))
	}
	add(o.setBool("ep_overlap", l.EPOverlap))
	if l.EPMaxRanksPerToken != 0 {
		add(o.setInt("ep_max_ranks_per_token", int64(l.EPMaxRanksPerToken)))
	}
	if l.EPTimeoutMS != 0 {
		add(o.setInt("ep_timeout_ms", l.EPTimeoutMS))
	}
	add(o.setBool("prefix_cache", l.PrefixCache))
	if l.Speculative != "" {
		add(o.setString("speculative", l.Speculative))
	}
	if l.DraftTokens != 0 {
		add(o.setInt("draft_tokens", int64(l.DraftTokens)))
	}
	if l.Attention != "" {
		add(o.setString("attention", l.Attention))
	}
	add(o.setBool("mtp", l.MTP))
	add(o.setBool("check_weights", l.CheckWeights))
	add(o.setBool("cuda_graphs", l.CUDAGraphs))
	if l.KVCacheDtype != "" {
		add(o.setString("kv_cache_dtype", l.KVCacheDtype))
	}
	if l.ActivationDtype != "" {
		add(o.setString("activation_dtype", l.ActivationDtype))
	}
	for _, e := range errs {
		if e != nil {
			o.free()
			return nil, e
		}
	}
	return o, nil
}

// GenerateOptions configures a generation; nil pointers and zero values keep the defaults: the
// checkpoint's generation_config.json for temperature, top_p, top_k and repetition_penalty (as
// transformers and vLLM do), else greedy; 256 tokens.
type GenerateOptions struct {
	MaxTokens   int
	Temperature float64 // 0 = unset (the checkpoint's default); see Greedy
	// Greedy: temperature 0 whatever generation_config.json says.
	Greedy            bool
	TopK              int
	TopP              *float64 // nil = off
	MinP              float64
	RepetitionPenalty *float64 // nil = off
	PresencePenalty   float64
	FrequencyPenalty  float64
	Seed              *int64
	Stop              []string
	StopTokenIDs      []int32
	IgnoreEOS         bool
	// NoGenerationPrompt: for chat, do not end with the assistant prompt.
	NoGenerationPrompt bool
	// Logprobs: nil = off; 0: each Token carries its TokenLogprobs; N (at most 20): with the N most
	// likely tokens at each step.
	Logprobs *int64
	// LogitBias: token id -> bias (-100 to 100) added to its logit before sampling (OpenAI's logit_bias).
	LogitBias map[int32]float32
}

// Float64, Int64 and Bool make pointers for the optional fields.
func Float64(v float64) *float64 { return &v }
func Int64(v int64) *int64       { return &v }
func Bool(v bool) *bool          { return &v }

func (g *GenerateOptions) build() (*options, error) {
	o, err := newOptions()
	if err != nil {
		return nil, err
	}
	if g == nil {
		return o, nil
	}
	var errs []error
	add := func(e error) { errs = append(errs, e) }
	if g.MaxTokens != 0 {
		add(o.setInt("max_tokens", int64(g.MaxTokens)))
	}
	if g.Greedy {
		add(o.setFloat("temperature", 0))
	} else if g.Temperature != 0 {
		add(o.setFloat("temperature", g.Temperature))
	}
	if g.TopK != 0 {
		add(o.setInt("top_k", int64(g.TopK)))
	}
	if g.TopP != nil {
		add(o.setFloat("top_p", *g.TopP))
	}
	if g.MinP != 0 {
		add(o.setFloat("min_p", g.MinP))
	}
	if g.RepetitionPenalty != nil {
		add(o.setFloat("repetition_penalty", *g.RepetitionPenalty))
	}
	if g.PresencePenalty != 0 {
		add(o.setFloat("presence_penalty", g.PresencePenalty))
	}
	if g.FrequencyPenalty != 0 {
		add(o.setFloat("frequency_penalty", g.FrequencyPenalty))
	}
	if g.Seed != nil {
		add(o.setInt("seed", *g.Seed))
	}
	for _, s := range g.Stop {
		add(o.addString("stop", s))
	}
	for _, t := range g.StopTokenIDs {
		add(o.addInt("stop_token_ids", int64(t)))
	}
	if g.IgnoreEOS {
		add(o.setInt("ignore_eos", 1))
	}
	if g.NoGenerationPrompt {
		add(o.setInt("add_generation_prompt", 0))
	}
	if g.Logprobs != nil {
		add(o.setInt("logprobs", *g.Logprobs))
	}
	for t, b := range g.LogitBias {
		add(o.addString("logit_bias", strconv.FormatInt(int64(t), 10)+":"+strconv.FormatFloat(float64(b), 'g', -1, 32)))
	}
	for _, e := range errs {
		if e != nil {
			o.free()
			return nil, e
		}
	}
	return o, nil
}

// ---- model ----

// Model is a loaded model, shared by any number of goroutines.
type Model struct {
	mu    sync.Mutex
	raw   *C.moert_model
	vocab int
}

type progressState struct {
	fn       func(float64, string) bool
	panicked interface{}
}

//export moertGoProgress
func moertGoProgress(user unsafe.Pointer, fraction C.double, stage *C.char) (cancel C.int32_t) {
	st := (*(*cgo.Handle)(user)).Value().(*progressState)
	defer func() {
		if r := recover(); r != nil { // a panic cannot unwind through moert: cancel, re-panic after
			st.panicked = r
			cancel = 1
		}
	}()
	if st.fn(float64(fraction), C.GoString(stage)) {
		return 1
	}
	return 0
}

// Load loads a Hugging Face DeepSeek checkpoint directory. opts may be nil.
func Load(dir string, opts *LoadOptions) (*Model, error) {
	o, err := opts.build()
	if err != nil {
		return nil, err
	}
	defer o.free()
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	var raw *C.moert_model
	if opts != nil && opts.Progress != nil {
		st := &progressState{fn: opts.Progress}
		h := cgo.NewHandle(st)
		defer h.Delete()
		hp := (*cgo.Handle)(C.malloc(C.size_t(unsafe.Sizeof(h))))
		defer C.free(unsafe.Pointer(hp))
		*hp = h
		err = call(func() C.moert_status {
			return C.moert_model_load(cdir, o.raw, C.moert_progress_fn(C.moertGoProgress), unsafe.Pointer(hp), &raw)
		})
		if st.panicked != nil {
			if err == nil {
				C.moert_model_free(raw)
			}
			panic(st.panicked)
		}
	} else {
		err = call(func() C.moert_status { return C.moert_model_load(cdir, o.raw, nil, nil, &raw) })
	}
	if err != nil {
		return nil, err
	}
	m := &Model{raw: raw}
	v, err := m.Info("vocab_size")
	if err != nil {
		m.Close()
		return nil, err
	}
	m.vocab = int(v)
	runtime.SetFinalizer(m, (*Model).Close)
	return m, nil
}

// Close releases the model (streams and sessions keep it alive). Safe to call twice.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.raw != nil {
		C.moert_model_free(m.raw)
		m.raw = nil
		runtime.SetFinalizer(m, nil)
	}
	return nil
}

func (m *Model) handle() (*C.moert_model, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.raw == nil {
		return nil, &Error{Status: StatusInvalidArgument, Message: "model is closed"}
	}
	return m.raw, nil
}

// Info returns an integer fact: "vocab_size", "context_length", "num_layers", "hidden_size",
// "num_experts", "num_mtp_layers", "parameters", "kv_bytes_per_token", "kv_capacity_tokens",
// "bos_token_id", "eos_token_id", "ep_rank" (0 without expert parallelism), "ep_size" (1 without),
// "ep_overlap" (1 when the two-microbatch overlap is in effect), and the CPU kernels' paths: "cpu_isa"
// (0 portable, 1 AVX2, 2 AVX-512), "cpu_amx_bf16" / "cpu_amx_int8" (1 when prefill runs on AMX tiles),
// "cpu_q4_int8".
func (m *Model) Info(key string) (int64, error) {
	raw, err := m.handle()
	if err != nil {
		return 0, err
	}
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	var v C.int64_t
	err = call(func() C.moert_status { return C.moert_model_info_int(raw, k, &v) })
	runtime.KeepAlive(m)
	return int64(v), err
}

// VocabSize is the logits row size.
func (m *Model) VocabSize() int { return m.vocab }

// Config returns the model config as moert understood it.
func (m *Model) Config() (map[string]interface{}, error) {
	raw, err := m.handle()
	if err != nil {
		return nil, err
	}
	s, err := readString(func(b *C.char, c C.size_t, n *C.size_t) C.moert_status {
		return C.moert_model_config_json(raw, b, c, n)
	})
	runtime.KeepAlive(m)
	if err != nil {
		return nil, err
	}
	var cfg map[string]interface{}
	if err := json.Unmarshal([]byte(s), &cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

func cInts(ids []int32) (*C.int32_t, C.size_t) {
	if len(ids) == 0 {
		return nil, 0
	}
	return (*C.int32_t)(unsafe.Pointer(&ids[0])), C.size_t(len(ids))
}

// Logits evaluates a token sequence in one forward pass: len(tokens) rows of VocabSize floats.
func (m *Model) Logits(tokens []int32) ([][]float32, error) {
	raw, err := m.handle()
	if err != nil {
		return nil, err
	}
	flat := make([]float32, len(tokens)*m.vocab+1)
	p, n := cInts(tokens)
	err = call(func() C.moert_status {
		return C.moert_model_logits(raw, p, n, (*C.float)(unsafe.Pointer(&flat[0])), C.size_t(len(tokens)*m.vocab))
	})
	runtime.KeepAlive(m)
	if err != nil {
		return nil, err
	}
	rows := make([][]float32, len(tokens))
	for i := range rows {
		rows[i] = flat[i*m.vocab : (i+1)*m.vocab : (i+1)*m.vocab]
	}
	return rows, nil
}

// Tokenizer returns the model's tokenizer (a new handle: Close it).
func (m *Model) Tokenizer() (*Tokenizer, error) {
	raw, err := m.handle()
	if err != nil {
		return nil, err
	}
	t := &Tokenizer{}
	if err := call(func() C.moert_status { return C.moert_model_tokenizer(raw, &t.raw) }); err != nil {
		return nil, err
	}
	runtime.KeepAlive(m)
	runtime.SetFinalizer(t, (*Tokenizer).Close)
	return t, nil
}

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Generate starts generating after a text prompt. Cancelling ctx cancels the stream (Err then returns
// ctx.Err()). opts may be nil.
func (m *Model) Generate(ctx context.Context, prompt string, opts *GenerateOptions) (*Stream, error) {
	p := C.CString(prompt)
	defer C.free(unsafe.Pointer(p))
	return m.start(ctx, opts, func(raw *C.moert_model, o *C.moert_options, out **C.moert_stream) C.moert_status {
		return C.moert_generate_text(raw, p, o, out)
	})
}

// GenerateTokens starts generating after a prompt of token ids.
func (m *Model) GenerateTokens(ctx context.Context, prompt []int32, opts *GenerateOptions) (*Stream, error) {
	return m.start(ctx, opts, func(raw *C.moert_model, o *C.moert_options, out **C.moert_stream) C.moert_status {
		p, n := cInts(prompt)
		return C.moert_generate_tokens(raw, p, n, o, out)
	})
}

// GenerateChat starts generating after chat messages rendered with the chat template.
func (m *Model) GenerateChat(ctx context.Context, messages []Message, opts *GenerateOptions) (*Stream, error) {
	js, err := json.Marshal(messages)
	if err != nil {
		return nil, err
	}
	return m.GenerateChatJSON(ctx, string(js), opts)
}

// GenerateChatJSON is GenerateChat with the messages already as a JSON array.
func (m *Model) GenerateChatJSON(ctx context.Context, messagesJSON string, opts *GenerateOptions) (*Stream, error) {
	js := C.CString(messagesJSON)
	defer C.free(unsafe.Pointer(js))
	return m.start(ctx, opts, func(raw *C.moert_model, o *C.moert_options, out **C.moert_stream) C.moert_status {
		return C.moert_generate_chat(raw, js, o, out)
	})
}

func (m *Model) start(ctx context.Context, opts *GenerateOptions,
	f func(*C.moert_model, *C.moert_options, **C.moert_stream) C.moert_status) (*Stream, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	raw, err := m.handle()
	if err != nil {
		return nil, err
	}
	o, err := opts.build()
	if err != nil {
		return nil, err
	}
	defer o.free()
	var out *C.moert_stream // a local: cgo refuses a pointer into a struct holding Go pointers
	if err := call(func() C.moert_status { return f(raw, o.raw, &out) }); err != nil {
		return nil, err
	}
	s := &Stream{raw: out, ctx: ctx, done: make(chan struct{}), logprobs: opts != nil && opts.Logprobs != nil && *opts.Logprobs >= 0}
	runtime.KeepAlive(m)
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				s.Cancel()
			case <-s.done:
			}
		}()
	}
	runtime.SetFinalizer(s, (*Stream).Close)
	return s, nil
}

// GenerateResume continues an exported sequence (Session.Export's image, from this or another process
// that loaded the same checkpoint) as a stream: the first token is sampled from the image's last logits,
// as a stream of the same prompt would have; only the continuation is streamed. Errors as ImportSession's.
func (m *Model) GenerateResume(ctx context.Context, image []byte, opts *GenerateOptions) (*Stream, error) {
	p, n := cBytes(image)
	return m.start(ctx, opts, func(raw *C.moert_model, o *C.moert_options, out **C.moert_stream) C.moert_status {
		return C.moert_generate_resume(raw, p, n, o, out)
	})
}

// ImportSession creates a session holding an exported sequence (Session.Export's image); evaluate on
// from it. A truncated, corrupt or mismatched image is an error wrapping ErrFormat whose message names
// the check that failed.
func (m *Model) ImportSession(image []byte) (*Session, error) {
	raw, err := m.handle()
	if err != nil {
		return nil, err
	}
	s := &Session{vocab: m.vocab}
	p, n := cBytes(image)
	if err := call(func() C.moert_status { return C.moert_session_import(raw, p, n, &s.raw) }); err != nil {
		return nil, err
	}
	runtime.KeepAlive(image)
	runtime.KeepAlive(m)
	runtime.SetFinalizer(s, (*Session).Close)
	return s, nil
}

func cBytes(b []byte) (unsafe.Pointer, C.size_t) {
	if len(b) == 0 {
		return nil, 0
	}
	return unsafe.Pointer(&b[0]), C.size_t(len(b))
}

// Session creates an evaluation session (its own KV cache).
func (m *Model) Session() (*Session, error) {
	raw, err := m.handle()
	if err != nil {
		return nil, err
	}
	s := &Session{vocab: m.vocab}
	if err := call(func() C.moert_status { return C.moert_session_create(raw, &s.raw) }); err != nil {
		return nil, err
	}
	runtime.KeepAlive(m)
	runtime.SetFinalizer(s, (*Session).Close)
	return s, nil
}

// ---- tokenizer ----

// Tokenizer is a byte-level BPE tokenizer with its chat template; any goroutine may use it.
type Tokenizer struct {
	mu  sync.Mutex
	raw *C.moert_tokenizer
}

// LoadTokenizer loads tokenizer.json or tiktoken.model (and tokenizer_config.json beside it, which
// tiktoken.model needs).
func LoadTokenizer(path string) (*Tokenizer, error) {
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	t := &Tokenizer{}
	if err := call(func() C.moert_status { return C.moert_tokenizer_load(p, nil, &t.raw) }); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(t, (*Tokenizer).Close)
	return t, nil
}

// Close frees the tokenizer. Safe to call twice.
func (t *Tokenizer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.raw != nil {
		C.moert_tokenizer_free(t.raw)
		t.raw = nil
		runtime.SetFinalizer(t, nil)
	}
	return nil
}

func (t *Tokenizer) handle() (*C.moert_tokenizer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.raw == nil {
		return nil, &Error{Status: StatusInvalidArgument, Message: "tokenizer is closed"}
	}
	return t.raw, nil
}

// Info: "vocab_size", "bos_token_id", "eos_token_id" (-1 when absent), "add_bos_default".
func (t *Tokenizer) Info(key string) (int64, error) {
	raw, err := t.handle()
	if err != nil {
		return 0, err
	}
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	var v C.int64_t
	err = call(func() C.moert_status { return C.moert_tokenizer_info_int(raw, k, &v) })
	runtime.KeepAlive(t)
	return int64(v), err
}

// BOS says whether Encode adds the BOS token.
type BOS int

const (
	BOSDefault BOS = -1 // as tokenizer_config.json says
	BOSNo      BOS = 0
	BOSYes     BOS = 1
)

// Encode turns text into token ids (special tokens written in the text are matched).
func (t *Tokenizer) Encode(text string, bos BOS) ([]int32, error) {
	raw, err := t.handle()
	if err != nil {
		return nil, err
	}
	ct := C.CString(text)
	defer C.free(unsafe.Pointer(ct))
	var n C.size_t
	if err := call(func() C.moert_status {
		return C.moert_tokenize(raw, ct, C.size_t(len(text)), C.int32_t(bos), 1, nil, 0, &n)
	}); err != nil {
		return nil, err
	}
	ids := make([]int32, int(n)+1)
	err = call(func() C.moert_status {
		return C.moert_tokenize(raw, ct, C.size_t(len(text)), C.int32_t(bos), 1, (*C.int32_t)(unsafe.Pointer(&ids[0])), n, &n)
	})
	runtime.KeepAlive(t)
	if err != nil {
		return nil, err
	}
	return ids[:n], nil
}

// Decode turns token ids into text, special tokens dropped.
func (t *Tokenizer) Decode(ids []int32) (string, error) {
	raw, err := t.handle()
	if err != nil {
		return "", err
	}
	p, n := cInts(ids)
	s, err := readString(func(b *C.char, c C.size_t, need *C.size_t) C.moert_status {
		return C.moert_detokenize(raw, p, n, 1, b, c, need)
	})
	runtime.KeepAlive(t)
	return s, err
}

// ApplyChatTemplate renders chat messages with the chat template.
func (t *Tokenizer) ApplyChatTemplate(messages []Message, addGenerationPrompt bool) (string, error) {
	raw, err := t.handle()
	if err != nil {
		return "", err
	}
	js, err := json.Marshal(messages)
	if err != nil {
		return "", err
	}
	cj := C.CString(string(js))
	defer C.free(unsafe.Pointer(cj))
	g := C.int32_t(0)
	if addGenerationPrompt {
		g = 1
	}
	s, err := readString(func(b *C.char, c C.size_t, need *C.size_t) C.moert_status {
		return C.moert_apply_chat_template(raw, cj, g, b, c, need)
	})
	runtime.KeepAlive(t)
	return s, err
}

// ---- session ----

// Session is one sequence with its own KV cache; one goroutine at a time.
type Session struct {
	raw   *C.moert_session
	vocab int
}

// Close frees the session. Safe to call twice.
func (s *Session) Close() error {
	if s.raw != nil {
		C.moert_session_free(s.raw)
		s.raw = nil
		runtime.SetFinalizer(s, nil)
	}
	return nil
}

// Eval appends tokens and returns the logits after the last one (one row) or after each (allLogits).
func (s *Session) Eval(tokens []int32, allLogits bool) ([][]float32, error) {
	rows := 1
	a := C.int32_t(0)
	if allLogits {
		rows, a = len(tokens), 1
	}
	flat := make([]float32, rows*s.vocab+1)
	p, n := cInts(tokens)
	if err := call(func() C.moert_status {
		return C.moert_session_eval(s.raw, p, n, a, (*C.float)(unsafe.Pointer(&flat[0])), C.size_t(rows*s.vocab))
	}); err != nil {
		return nil, err
	}
	out := make([][]float32, rows)
	for i := range out {
		out[i] = flat[i*s.vocab : (i+1)*s.vocab : (i+1)*s.vocab]
	}
	return out, nil
}

// Len is the number of tokens in the sequence.
func (s *Session) Len() (int, error) {
	var n C.int64_t
	err := call(func() C.moert_status { return C.moert_session_length(s.raw, &n) })
	return int(n), err
}

// Truncate drops the tokens after the first length.
func (s *Session) Truncate(length int) error {
	return call(func() C.moert_status { return C.moert_session_truncate(s.raw, C.int64_t(length)) })
}

// Export returns the sequence as a KV image (KV hand-off): its tokens, latent cache and last logits
// behind a header with the checkpoint's fingerprint and a checksum, for Model.ImportSession or
// Model.GenerateResume in a process that loaded the same checkpoint. ErrInvalidArgument for an empty
// session or one truncated since its last evaluation.
func (s *Session) Export() ([]byte, error) {
	var need C.size_t
	if err := call(func() C.moert_status { return C.moert_session_export(s.raw, nil, 0, &need) }); err != nil {
		return nil, err
	}
	buf := make([]byte, int(need))
	p, n := cBytes(buf)
	if err := call(func() C.moert_status { return C.moert_session_export(s.raw, p, n, &need) }); err != nil {
		return nil, err
	}
	return buf[:int(need)], nil
}

// ---- streams ----

// FinishReason says why a stream ended.
type FinishReason int

const (
	FinishNone      FinishReason = C.MOERT_FINISH_NONE
	FinishLength    FinishReason = C.MOERT_FINISH_LENGTH
	FinishStop      FinishReason = C.MOERT_FINISH_STOP
	FinishEOS       FinishReason = C.MOERT_FINISH_EOS
	FinishCancelled FinishReason = C.MOERT_FINISH_CANCELLED
	FinishError     FinishReason = C.MOERT_FINISH_ERROR
)

func (f FinishReason) String() string {
	return [...]string{"none", "length", "stop", "eos", "cancelled", "error"}[f]
}

// Token is one streamed event: ID is -1 for a final event without a token.
type Token struct {
	ID     int32
	Text   string
	Finish FinishReason
	// Logprobs: the token's log probabilities when the stream was started with GenerateOptions.Logprobs
	// (nil otherwise, and for a final event without a token).
	Logprobs *TokenLogprobs
}

// TokenLogprobs is a generated token's log probability under the model (the log-softmax of the step's raw
// logits: the sampling options change which token is drawn, not these) and the step's most likely tokens,
// most likely first.
type TokenLogprobs struct {
	Logprob float32
	Top     []TopLogprob
}

// TopLogprob is one of a step's most likely tokens.
type TopLogprob struct {
	ID      int32
	Logprob float32
}

// Usage of a stream so far.
type Usage struct {
	PromptTokens     int64
	GeneratedTokens  int64
	TimeToFirstToken time.Duration
	TokensPerSecond  float64
	// The request's counters (moert_stream_counter): prompt tokens taken from the prefix cache instead of
	// computed, main-model forwards after the prompt, tokens the MTP module drafted, and drafts the main
	// model confirmed (each saves a forward).
	CachedPromptTokens int64
	DecodeForwards     int64
	DraftTokens        int64
	AcceptedDrafts     int64
}

// Stream is a running generation, read by one goroutine at a time with Next/Token/Err (like
// bufio.Scanner). Cancel may be called from any goroutine. Close it when done (it cancels a running one).
type Stream struct {
	mu     sync.Mutex // guards raw against Close while Cancel runs on another goroutine
	raw    *C.moert_stream
	ctx    context.Context
	done   chan struct{}
	tok    Token
	finish FinishReason
	err    error
	// logprobs: the stream was started with GenerateOptions.Logprobs
	logprobs bool
}

// Close cancels the generation if it is running and frees the stream. Safe to call twice.
func (s *Stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.raw != nil {
		close(s.done)
		C.moert_stream_free(s.raw)
		s.raw = nil
		runtime.SetFinalizer(s, nil)
	}
	return nil
}

// Cancel asks the stream to stop; it ends with FinishCancelled. Any goroutine.
func (s *Stream) Cancel() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.raw == nil {
		return nil
	}
	return call(func() C.moert_status { return C.moert_stream_cancel(s.raw) })
}

// NextEvent waits up to timeout (negative: no limit) for the next event. An error wrapping ErrTimeout
// means nothing came yet. After the end it returns the final event again.
func (s *Stream) NextEvent(timeout time.Duration) (Token, error) {
	if s.raw == nil {
		return Token{}, &Error{Status: StatusInvalidArgument, Message: "stream is closed"}
	}
	ms := C.int32_t(-1)
	if timeout >= 0 {
		ms = C.int32_t(timeout.Milliseconds())
	}
	var tok, fin C.int32_t
	if err := call(func() C.moert_status { return C.moert_stream_next(s.raw, ms, &tok, &fin) }); err != nil {
		return Token{}, err
	}
	text, err := readString(func(b *C.char, c C.size_t, n *C.size_t) C.moert_status {
		return C.moert_stream_text(s.raw, b, c, n)
	})
	if err != nil {
		return Token{}, err
	}
	t := Token{ID: int32(tok), Text: text, Finish: FinishReason(fin)}
	if s.logprobs && tok >= 0 {
		if t.Logprobs, err = s.readLogprobs(); err != nil {
			return Token{}, err
		}
	}
	if t.Finish != FinishNone {
		s.finish = t.Finish
	}
	return t, nil
}

// readLogprobs is moert_stream_logprobs of the event last read.
func (s *Stream) readLogprobs() (*TokenLogprobs, error) {
	var own C.float
	var n C.size_t
	if err := call(func() C.moert_status { return C.moert_stream_logprobs(s.raw, &own, nil, nil, 0, &n) }); err != nil {
		return nil, err
	}
	lp := &TokenLogprobs{Logprob: float32(own), Top: make([]TopLogprob, int(n))}
	if n == 0 {
		return lp, nil
	}
	ids := make([]C.int32_t, int(n))
	vals := make([]C.float, int(n))
	if err := call(func() C.moert_status {
		return C.moert_stream_logprobs(s.raw, nil, &ids[0], &vals[0], n, &n)
	}); err != nil {
		return nil, err
	}
	for i := range lp.Top {
		lp.Top[i] = TopLogprob{ID: int32(ids[i]), Logprob: float32(vals[i])}
	}
	return lp, nil
}

// Next advances to the next token or text piece; false at the end or on an error (see Err).
func (s *Stream) Next() bool {
	for s.finish == FinishNone && s.err == nil {
		t, err := s.NextEvent(-1)
		if err != nil {
			s.err = err
			return false
		}
		if t.Finish == FinishError {
			msg, _ := readString(func(b *C.char, c C.size_t, n *C.size_t) C.moert_status {
				return C.moert_stream_error(s.raw, b, c, n)
			})
			s.err = &Error{Status: StatusGeneration, Message: msg}
			return false
		}
		if t.ID >= 0 || t.Text != "" {
			s.tok = t
			return true
		}
	}
	return false
}

// Token is the event Next advanced to.
func (s *Stream) Token() Token { return s.tok }

// Err is the error that ended the stream: nil at a normal end, ctx.Err() when the context cancelled it.
func (s *Stream) Err() error {
	if s.err != nil {
		return s.err
	}
	if s.finish == FinishCancelled && s.ctx.Err() != nil {
		return s.ctx.Err()
	}
	return nil
}

// FinishReason says why the stream ended (FinishNone while running).
func (s *Stream) FinishReason() FinishReason { return s.finish }

// Usage reports token counts, speed and the request's counters so far.
func (s *Stream) Usage() (Usage, error) {
	var p, g C.int64_t
	var ttft, tps C.double
	if s.raw == nil {
		return Usage{}, &Error{Status: StatusInvalidArgument, Message: "stream is closed"}
	}
	if err := call(func() C.moert_status { return C.moert_stream_usage(s.raw, &p, &g, &ttft, &tps) }); err != nil {
		return Usage{}, err
	}
	u := Usage{PromptTokens: int64(p), GeneratedTokens: int64(g),
		TimeToFirstToken: time.Duration(float64(ttft) * float64(time.Second)), TokensPerSecond: float64(tps)}
	for _, c := range []struct {
		key string
		out *int64
	}{{"cached_prompt_tokens", &u.CachedPromptTokens}, {"decode_forwards", &u.DecodeForwards},
		{"draft_tokens", &u.DraftTokens}, {"accepted_drafts", &u.AcceptedDrafts}} {
		v, err := s.Counter(c.key)
		if err != nil {
			return Usage{}, err
		}
		*c.out = v
	}
	return u, nil
}

// Counter returns a counter of the request so far: "cached_prompt_tokens", "decode_forwards",
// "draft_tokens", "accepted_drafts" (also in Usage).
func (s *Stream) Counter(key string) (int64, error) {
	if s.raw == nil {
		return 0, &Error{Status: StatusInvalidArgument, Message: "stream is closed"}
	}
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	var v C.int64_t
	if err := call(func() C.moert_status { return C.moert_stream_counter(s.raw, k, &v) }); err != nil {
		return 0, err
	}
	return int64(v), nil
}

func (s *Stream) infoInt(key string) (int64, error) {
	if s.raw == nil {
		return 0, &Error{Status: StatusInvalidArgument, Message: "stream is closed"}
	}
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	var v C.int64_t
	if err := call(func() C.moert_status { return C.moert_stream_info_int(s.raw, k, &v) }); err != nil {
		return 0, err
	}
	return int64(v), nil
}

// Seed is the sampling seed in effect: the one given, or the fresh one a sampled request without a seed
// drew (pass it as Seed to repeat the run); 0 for greedy.
func (s *Stream) Seed() (int64, error) { return s.infoInt("seed") }

// Sampled reports whether the request samples (temperature > 0 after generation_config.json's defaults).
func (s *Stream) Sampled() (bool, error) {
	v, err := s.infoInt("sampled")
	return v != 0, err
}

// Tokens reads the stream to its end and returns the generated token ids.
func (s *Stream) Tokens() ([]int32, error) {
	var ids []int32
	for s.Next() {
		if s.tok.ID >= 0 {
			ids = append(ids, s.tok.ID)
		}
	}
	return ids, s.Err()
}

// Text reads the stream to its end and returns the text.
func (s *Stream) Text() (string, error) {
	var b []byte
	for s.Next() {
		b = append(b, s.tok.Text...)
	}
	return string(b), s.Err()
}
