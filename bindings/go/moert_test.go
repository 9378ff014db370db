package moert_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	moert "github.com/moert/moert/bindings/go"
)

var prompts = []string{"def fibonacci(n):\n", "import numpy as np\n\n\ndef normalize(x):\n",
	"class Stack:\n    def __init__(self):\n", "# Read a CSV file and print the sum of each column\n"}

func modelDir() string {
	if d := os.Getenv("MOERT_MODEL_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "samples", "models", "moert-tiny-coder")
}

type ref struct{ ids, greedy []int32 }

// A tiny safetensors reader for the int32 tensors of reference.safetensors.
func reference(t *testing.T) []ref {
	data, err := os.ReadFile(filepath.Join(modelDir(), "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(data[:8])
	var header map[string]struct {
		DType   string `json:"dtype"`
		Offsets [2]int `json:"data_offsets"`
	}
	if err := json.Unmarshal(data[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	get := func(name string) []int32 {
		e := header[name]
		b := data[8+int(n)+e.Offsets[0] : 8+int(n)+e.Offsets[1]]
		v := make([]int32, len(b)/4)
		for i := range v {
			v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return v
	}
	var out []ref
	for k := 0; k < 4; k++ {
		out = append(out, ref{get(fmt.Sprintf("prompt%d.ids", k)), get(fmt.Sprintf("prompt%d.greedy", k))})
	}
	return out
}

func load(t *testing.T) *moert.Model {
	m, err := moert.Load(modelDir(), &moert.LoadOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func greedy(n int) *moert.GenerateOptions {
	return &moert.GenerateOptions{MaxTokens: n, IgnoreEOS: true, Greedy: true}
}

func equal(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestGreedyMatchesReference(t *testing.T) {
	m := load(t)
	tok, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	ctx := context.Background()
	for k, r := range reference(t) {
		ids, err := tok.Encode(prompts[k], moert.BOSDefault)
		if err != nil || !equal(ids, r.ids) {
			t.Fatalf("prompt %d: encode %v %v, want %v", k, ids, err, r.ids)
		}
		s, err := m.GenerateTokens(ctx, r.ids, greedy(48))
		if err != nil {
			t.Fatal(err)
		}
		var got []int32
		var text strings.Builder
		for s.Next() {
			if s.Token().ID >= 0 {
				got = append(got, s.Token().ID)
			}
			text.WriteString(s.Token().Text)
		}
		if s.Err() != nil || !equal(got, r.greedy) || s.FinishReason() != moert.FinishLength {
			t.Fatalf("prompt %d: got %v (%v, %v), want %v", k, got, s.Err(), s.FinishReason(), r.greedy)
		}
		if want, _ := tok.Decode(r.greedy); text.String() != want {
			t.Errorf("prompt %d: text %q, want %q", k, text.String(), want)
		}
		u, err := s.Usage()
		if err != nil || u.PromptTokens != int64(len(r.ids)) || u.GeneratedTokens != 48 || u.TokensPerSecond <= 0 {
			t.Errorf("usage %+v %v", u, err)
		}
		s.Close()
		s, _ = m.Generate(ctx, prompts[k], greedy(48))
		if got, err := s.Tokens(); err != nil || !equal(got, r.greedy) {
			t.Errorf("prompt %d from text: %v %v", k, got, err)
		}
		s.Close()
	}
}

func TestLogprobsAreTheModelsLogSoftmax(t *testing.T) {
	m := load(t)
	r := reference(t)[0]
	opts := greedy(4)
	opts.Logprobs = moert.Int64(2)
	s, err := m.GenerateTokens(context.Background(), r.ids, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seq := append([]int32(nil), r.ids...)
	steps := 0
	for s.Next() {
		tk := s.Token()
		if tk.ID != r.greedy[steps] || tk.Logprobs == nil || len(tk.Logprobs.Top) != 2 {
			t.Fatalf("step %d: %+v, want token %d with 2 alternatives", steps, tk, r.greedy[steps])
		}
		rows, err := m.Logits(seq)
		if err != nil {
			t.Fatal(err)
		}
		row := rows[len(rows)-1]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		sum := 0.0
		for _, v := range row {
			sum += math.Exp(float64(v) - mx)
		}
		want := float64(row[tk.ID]) - mx - math.Log(sum)
		lp := tk.Logprobs
		if math.Abs(float64(lp.Logprob)-want) > 1e-3 || lp.Top[0].ID != tk.ID || lp.Top[0].Logprob != lp.Logprob ||
			lp.Top[1].Logprob > lp.Top[0].Logprob {
			t.Errorf("step %d: %+v, want logprob %g for the first of the top", steps, *lp, want)
		}
		seq = append(seq, tk.ID)
		steps++
	}
	if s.Err() != nil || steps != 4 {
		t.Fatalf("%d steps, %v", steps, s.Err())
	}
	plain, err := m.GenerateTokens(context.Background(), r.ids, greedy(1))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if !plain.Next() || plain.Token().Logprobs != nil {
		t.Errorf("without the option: %+v", plain.Token())
	}
	opts.Logprobs = moert.Int64(21)
	if _, err := m.GenerateTokens(context.Background(), r.ids, opts); err == nil {
		t.Error("logprobs 21 accepted")
	}
}

func TestLogitBiasForcesAndBans(t *testing.T) {
	m := load(t)
	r := reference(t)[0]
	opts := greedy(3)
	opts.LogitBias = map[int32]float32{65: 100}
	s, err := m.GenerateTokens(context.Background(), r.ids, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Tokens()
	s.Close()
	if err != nil || !equal(got, []int32{65, 65, 65}) {
		t.Fatalf("forced: %v %v", got, err)
	}
	opts = greedy(1)
	opts.LogitBias = map[int32]float32{r.greedy[0]: -100}
	s, _ = m.GenerateTokens(context.Background(), r.ids, opts)
	got, _ = s.Tokens()
	s.Close()
	if len(got) != 1 || got[0] == r.greedy[0] {
		t.Errorf("banned: %v", got)
	}
	opts.LogitBias = map[int32]float32{1: 500}
	if _, err := m.GenerateTokens(context.Background(), r.ids, opts); err == nil {
		t.Error("a bias of 500 was accepted")
	}
}

func TestConcurrentStreams(t *testing.T) {
	m := load(t)
	refs := reference(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, err := m.GenerateTokens(context.Background(), refs[i%4].ids, greedy(48))
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			if got, err := s.Tokens(); err != nil || !equal(got, refs[i%4].greedy) {
				errs <- fmt.Errorf("goroutine %d: %v %v", i, got, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestCancel(t *testing.T) {
	m := load(t)
	ids := reference(t)[0].ids
	s, err := m.GenerateTokens(context.Background(), ids, greedy(1000000))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Next() {
		t.Fatal(s.Err())
	}
	done := make(chan error)
	go func() { done <- s.Cancel() }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for s.Next() {
	}
	if s.FinishReason() != moert.FinishCancelled || s.Err() != nil {
		t.Fatalf("finish %v err %v", s.FinishReason(), s.Err())
	}

	// Context cancellation.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s2, err := m.GenerateTokens(ctx, ids, greedy(1000000))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	_, err = s2.Tokens()
	if !errors.Is(err, context.DeadlineExceeded) || s2.FinishReason() != moert.FinishCancelled {
		t.Fatalf("err %v finish %v", err, s2.FinishReason())
	}
}

func TestStopsAndSampling(t *testing.T) {
	m := load(t)
	tok, _ := m.Tokenizer()
	defer tok.Close()
	r := reference(t)[0]
	full, _ := tok.Decode(r.greedy)
	stop := full[6:11]
	o := greedy(48)
	o.Stop = []string{stop}
	s, _ := m.GenerateTokens(nil, r.ids, o)
	text, err := s.Text()
	if err != nil || text != full[:strings.Index(full, stop)] || s.FinishReason() != moert.FinishStop {
		t.Errorf("stop string: %q %v %v", text, err, s.FinishReason())
	}
	s.Close()
	o = greedy(48)
	o.StopTokenIDs = []int32{r.greedy[3]}
	s, _ = m.GenerateTokens(nil, r.ids, o)
	got, _ := s.Tokens()
	if s.FinishReason() != moert.FinishStop || got[len(got)-1] != r.greedy[3] {
		t.Errorf("stop token: %v %v", got, s.FinishReason())
	}
	s.Close()
	run := func(seed int64) []int32 {
		s, err := m.GenerateTokens(nil, reference(t)[1].ids, &moert.GenerateOptions{MaxTokens: 24, Temperature: 0.8,
			TopK: 40, TopP: moert.Float64(0.9), MinP: 0.02, RepetitionPenalty: moert.Float64(1.1), PresencePenalty: 0.2,
			Seed: moert.Int64(seed), IgnoreEOS: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ids, _ := s.Tokens()
		return ids
	}
	if !equal(run(7), run(7)) || equal(run(7), run(8)) {
		t.Error("seeded sampling is not reproducible")
	}
}

func TestTokenizerChatLogitsSession(t *testing.T) {
	m := load(t)
	if v, _ := m.Info("vocab_size"); v != 8320 || m.VocabSize() != 8320 {
		t.Fatal(v)
	}
	if cfg, err := m.Config(); err != nil || len(cfg) == 0 {
		t.Fatal(err)
	}
	tok, _ := m.Tokenizer()
	defer tok.Close()
	ids, _ := tok.Encode("héllo wörld ✓", moert.BOSNo)
	if s, _ := tok.Decode(ids); s != "héllo wörld ✓" {
		t.Error(s)
	}
	msgs := []moert.Message{{Role: "user", Content: "Write a function."}}
	rendered, err := tok.ApplyChatTemplate(msgs, true)
	if err != nil || !strings.Contains(rendered, "Write a function.") || !strings.Contains(rendered, "Assistant") {
		t.Error(rendered, err)
	}
	s, err := m.GenerateChat(nil, msgs, greedy(8))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Tokens(); len(got) != 8 {
		t.Error(got)
	}
	s.Close()
	t2, err := moert.LoadTokenizer(filepath.Join(modelDir(), "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	t2.Close()
	// Moonlight/Kimi-K2's tiktoken.model; the ids are tiktoken's (tests/data/tokenizer-tiktoken).
	t3, err := moert.LoadTokenizer(filepath.Join(modelDir(), "../../../tests/data/tokenizer-tiktoken/tiktoken.model"))
	if err != nil {
		t.Fatal(err)
	}
	tids, err := t3.Encode("Hello世界，你好World！<|im_end|>", moert.BOSNo)
	if want := []int32{9906, 3574, 244, 163, 243, 234, 3922, 8687, 254, 161, 98, 121, 10343, 6447, 24002}; err != nil || !reflect.DeepEqual(tids, want) {
		t.Errorf("tiktoken ids %v, %v; want %v", tids, err, want)
	}
	t3.Close()

	r := reference(t)[0]
	argmax := func(row []float32) int32 {
		b := 0
		for i, x := range row {
			if x > row[b] {
				b = i
			}
		}
		return int32(b)
	}
	rows, err := m.Logits(r.ids)
	if err != nil || len(rows) != len(r.ids) || argmax(rows[len(rows)-1]) != r.greedy[0] {
		t.Fatal(err)
	}
	sess, _ := m.Session()
	defer sess.Close()
	last, err := sess.Eval(r.ids, false)
	if err != nil || argmax(last[0]) != r.greedy[0] {
		t.Fatal(err)
	}
	all, _ := sess.Eval(r.greedy[:2], true)
	if len(all) != 2 || argmax(all[0]) != r.greedy[1] {
		t.Error("all logits")
	}
	sess.Truncate(len(r.ids))
	if n, _ := sess.Len(); n != len(r.ids) {
		t.Error(n)
	}
}

func TestErrors(t *testing.T) {
	m := load(t)
	_, err := m.GenerateTokens(nil, []int32{1, 99999}, nil)
	var me *moert.Error
	if !errors.As(err, &me) || me.Status != moert.StatusInvalidArgument || !strings.Contains(me.Message, "99999") {
		t.Errorf("bad token: %v", err)
	}
	if !errors.Is(err, moert.ErrInvalidArgument) {
		t.Error("errors.Is")
	}
	if _, err := m.GenerateTokens(nil, nil, nil); !errors.Is(err, moert.ErrInvalidArgument) {
		t.Error(err)
	}
	if _, err := m.Logits([]int32{5, 8320}); !errors.Is(err, moert.ErrInvalidArgument) {
		t.Error(err)
	}
	if _, err := m.GenerateChatJSON(nil, "not json", nil); !errors.Is(err, moert.ErrInvalidArgument) {
		t.Error(err)
	}
	if _, err := m.Generate(nil, "x", &moert.GenerateOptions{Temperature: -1}); !errors.Is(err, moert.ErrInvalidArgument) ||
		!strings.Contains(err.Error(), "temperature") {
		t.Error(err)
	}
	if _, err := moert.Load("/nonexistent/model", nil); !errors.Is(err, moert.ErrIO) {
		t.Error(err)
	}
	if _, err := moert.LoadTokenizer("/nonexistent/tokenizer.json"); !errors.Is(err, moert.ErrIO) {
		t.Error(err)
	}
	s, _ := m.GenerateTokens(nil, []int32{5}, greedy(1))
	for {
		if _, err := s.NextEvent(0); err == nil {
			break
		} else if !errors.Is(err, moert.ErrTimeout) {
			t.Fatal(err)
		}
	}
	s.Close()
	s.Close()
	if _, err := s.NextEvent(0); !errors.Is(err, moert.ErrInvalidArgument) {
		t.Error(err)
	}
}

func TestBatchInvariantAndExpertParallelLoadOptions(t *testing.T) {
	m, err := moert.Load(modelDir(), &moert.LoadOptions{Threads: 2, BatchInvariant: true, EPTransport: "inproc",
		EPOverlap: moert.Bool(true), EPRedundant: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for key, want := range map[string]int64{"ep_overlap": 1, "ep_size": 1, "ep_rank": 0} {
		if v, err := m.Info(key); err != nil || v != want {
			t.Errorf("Info(%q) = %d, %v; want %d", key, v, err, want)
		}
	}
	for k, r := range reference(t) {
		s, err := m.GenerateTokens(context.Background(), r.ids, greedy(48))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.Tokens(); err != nil || !equal(got, r.greedy) {
			t.Errorf("prompt %d: got %v %v, want %v", k, got, err, r.greedy)
		}
		s.Close()
	}
	_, err = moert.Load(modelDir(), &moert.LoadOptions{EPTransport: "tcp"})
	var me *moert.Error
	if !errors.As(err, &me) || me.Status != moert.StatusInvalidArgument ||
		!strings.Contains(me.Message, `'ep_transport' value "tcp" is not one of`) {
		t.Errorf("ep_transport tcp: %v", err)
	}
	_, err = moert.Load(modelDir(), &moert.LoadOptions{EPSize: -1})
	if !errors.Is(err, moert.ErrInvalidArgument) || !strings.Contains(err.Error(), "'ep_size' value -1 is out of range") {
		t.Errorf("ep_size -1: %v", err)
	}
}

func TestLoadProgress(t *testing.T) {
	var last float64
	calls := 0
	m, err := moert.Load(modelDir(), &moert.LoadOptions{Threads: 1, Progress: func(f float64, stage string) bool {
		calls++
		last = f
		return false
	}})
	if err != nil || calls == 0 || last != 1 {
		t.Fatal(err, calls, last)
	}
	m.Close()
	m.Close()
	_, err = moert.Load(modelDir(), &moert.LoadOptions{Progress: func(f float64, _ string) bool { return f > 0 }})
	if !errors.Is(err, moert.ErrCancelled) {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a panic in the callback comes back")
			}
		}()
		moert.Load(modelDir(), &moert.LoadOptions{Progress: func(float64, string) bool { panic("boom") }})
	}()
}

// The shipped generation_config.json (temperature 0.7, top_p 0.95) applies when nothing is set; an
// unseeded sampled run reports the seed it drew, and that seed repeats it.
func TestGenerationConfigDefaultsAndReportedSeed(t *testing.T) {
	m := load(t)
	defer m.Close()
	ids := reference(t)[0].ids
	run := func(o *moert.GenerateOptions) ([]int32, int64) {
		o.MaxTokens, o.IgnoreEOS = 32, true
		s, err := m.GenerateTokens(nil, ids, o)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		seed, err := s.Seed()
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Tokens()
		if err != nil {
			t.Fatal(err)
		}
		return got, seed
	}
	byDefault, seed := run(&moert.GenerateOptions{Seed: moert.Int64(3)})
	if seed != 3 {
		t.Fatalf("seed %d", seed)
	}
	if got, _ := run(&moert.GenerateOptions{Seed: moert.Int64(3), Temperature: 0.7, TopP: moert.Float64(0.95)}); !equal(got, byDefault) {
		t.Fatalf("the default is not generation_config.json's: %v vs %v", got, byDefault)
	}
	if got, _ := run(&moert.GenerateOptions{Seed: moert.Int64(3), Greedy: true}); !equal(got, reference(t)[0].greedy[:32]) {
		t.Fatalf("Greedy is not greedy: %v", got)
	}
	a, seedA := run(&moert.GenerateOptions{})
	b, seedB := run(&moert.GenerateOptions{})
	if seedA == seedB {
		t.Fatalf("two unseeded runs drew the same seed %d", seedA)
	}
	if again, _ := run(&moert.GenerateOptions{Seed: moert.Int64(seedA)}); !equal(again, a) {
		t.Fatal("the reported seed does not repeat the run")
	}
	if again, _ := run(&moert.GenerateOptions{Seed: moert.Int64(seedB)}); !equal(again, b) {
		t.Fatal("the reported seed does not repeat the run")
	}
	s, err := m.GenerateTokens(nil, ids, greedy(2))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if sampled, err := s.Sampled(); err != nil || sampled {
		t.Fatalf("greedy stream: sampled %v, %v", sampled, err)
	}
}

func TestDecodeUnknownIDIsAnError(t *testing.T) {
	m := load(t)
	defer m.Close()
	tok, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	_, err = tok.Decode([]int32{5, 99999, 7})
	if !errors.Is(err, moert.ErrInvalidArgument) || !strings.Contains(err.Error(), "token id 99999 at position 1") {
		t.Fatalf("got %v", err)
	}
}

// The default model plus a trained MTP module (speculative decoding).
func mtpModelDir() string {
	return filepath.Join("..", "..", "tests", "data", "moert-tiny-coder-mtp")
}

// run generates greedily from ids and returns the tokens and the usage.
func run(t *testing.T, m *moert.Model, ids []int32, n int) ([]int32, moert.Usage) {
	t.Helper()
	s, err := m.GenerateTokens(context.Background(), ids, greedy(n))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Tokens()
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	return got, u
}

func TestPrefixCacheAndSpeculationLoadOptions(t *testing.T) {
	m := load(t)
	tok, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	// More than two 64-token KV pages (the prefix cache shares whole pages).
	ids, err := tok.Encode(strings.Repeat("def add(a, b):\n    return a + b\n\n\n", 12), moert.BOSDefault)
	if err != nil || len(ids) <= 128 {
		t.Fatalf("long prompt: %d tokens, %v", len(ids), err)
	}
	first, u := run(t, m, ids, 4)
	if u.DraftTokens != 0 || u.AcceptedDrafts != 0 || u.DecodeForwards <= 0 { // no MTP module here
		t.Errorf("first usage %+v", u)
	}
	s, err := m.GenerateTokens(context.Background(), ids, greedy(4))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Tokens(); err != nil || !equal(got, first) {
		t.Errorf("second: %v %v, want %v", got, err, first)
	}
	if u, err := s.Usage(); err != nil || u.CachedPromptTokens <= 0 {
		t.Errorf("second usage %+v, %v: want cached prompt tokens", u, err)
	}
	if v, err := s.Counter("cached_prompt_tokens"); err != nil || v <= 0 {
		t.Errorf("Counter: %d, %v", v, err)
	}
	if _, err := s.Counter("nope"); !errors.Is(err, moert.ErrInvalidArgument) {
		t.Errorf("Counter(nope): %v", err)
	}
	s.Close()

	off, err := moert.Load(modelDir(), &moert.LoadOptions{Threads: 2, PrefixCache: moert.Bool(false),
		Speculative: "off", DraftTokens: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	for i := 0; i < 2; i++ {
		if got, u := run(t, off, ids, 4); !equal(got, first) || u.CachedPromptTokens != 0 {
			t.Errorf("prefix_cache 0, run %d: %v %+v", i, got, u)
		}
	}
	_, err = moert.Load(modelDir(), &moert.LoadOptions{Speculative: "sometimes"})
	if !errors.Is(err, moert.ErrInvalidArgument) || !strings.Contains(err.Error(), "speculative") {
		t.Errorf("speculative sometimes: %v", err)
	}
	_, err = moert.Load(modelDir(), &moert.LoadOptions{DraftTokens: 4})
	if !errors.Is(err, moert.ErrInvalidArgument) || !strings.Contains(err.Error(), "draft_tokens") {
		t.Errorf("draft_tokens 4: %v", err)
	}
}

func TestKVHandoff(t *testing.T) {
	m := load(t)
	r := reference(t)[1]
	sess, err := m.Session()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Export(); !errors.Is(err, moert.ErrInvalidArgument) {
		t.Errorf("Export of an empty session: %v", err)
	}
	if _, err := sess.Eval(r.ids, false); err != nil {
		t.Fatal(err)
	}
	image, err := sess.Export()
	sess.Close()
	if err != nil || len(image) == 0 {
		t.Fatalf("Export: %d bytes, %v", len(image), err)
	}
	other := load(t) // a second instance continues the sequence
	s, err := other.GenerateResume(context.Background(), image, greedy(24))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Tokens(); err != nil || !equal(got, r.greedy[:24]) {
		t.Errorf("resumed: %v %v, want %v", got, err, r.greedy[:24])
	}
	s.Close()
	imported, err := other.ImportSession(image)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := imported.Len(); err != nil || n != len(r.ids) {
		t.Errorf("imported Len = %d, %v", n, err)
	}
	row, err := imported.Eval(r.greedy[:1], false)
	imported.Close()
	if err != nil {
		t.Fatal(err)
	}
	direct, err := m.Logits(append(append([]int32{}, r.ids...), r.greedy[0]))
	if err != nil {
		t.Fatal(err)
	}
	want := direct[len(direct)-1]
	for i := range want {
		if d := row[0][i] - want[i]; d > 1e-4+1e-4*abs(want[i]) || -d > 1e-4+1e-4*abs(want[i]) {
			t.Fatalf("imported logit %d: %g, want %g", i, row[0][i], want[i])
		}
	}
	bad := append([]byte{}, image...)
	bad[len(bad)/2] ^= 0x40
	_, err = other.GenerateResume(context.Background(), bad, greedy(4))
	if !errors.Is(err, moert.ErrFormat) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("corrupt image: %v", err)
	}
	if _, err := other.ImportSession(bad); !errors.Is(err, moert.ErrFormat) {
		t.Errorf("ImportSession of a corrupt image: %v", err)
	}
	if _, err := other.ImportSession(image[:100]); !errors.Is(err, moert.ErrFormat) {
		t.Errorf("ImportSession of a truncated image: %v", err)
	}
}

func abs(f float32) float32 {
	if f < 0 {
		return -f
	}
	return f
}

func TestSpeculativeDecodingWithMTPModule(t *testing.T) {
	r := reference(t)[0]
	for _, mode := range []string{"on", "auto", "off"} { // auto: no drafts on the CPU, where they do not pay
		m, err := moert.Load(mtpModelDir(), &moert.LoadOptions{Threads: 2, Speculative: mode})
		if err != nil {
			t.Fatal(err)
		}
		got, u := run(t, m, r.ids, 48)
		m.Close()
		if !equal(got, r.greedy) { // greedy output is the same with and without drafts
			t.Errorf("speculative %s: %v, want %v", mode, got, r.greedy)
		}
		if (mode == "on") != (u.DraftTokens > 0) || u.AcceptedDrafts > u.DraftTokens {
			t.Errorf("speculative %s: usage %+v", mode, u)
		}
	}
}

// The load keys added to LoadOptions reach the C API under their own names (a bad value is the C API's
// error naming the key).
func TestCacheAndWeightCheckOptionsReachTheLibrary(t *testing.T) {
	m, err := moert.Load(mtpModelDir(), &moert.LoadOptions{Threads: 1, Attention: "absorbed", MTP: moert.Bool(false),
		CheckWeights: moert.Bool(false), CUDAGraphs: moert.Bool(false), KVCacheDtype: "fp32",
		ActivationDtype: "fp32"})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.Info("num_mtp_layers"); err != nil || n != 0 { // MTP false: the module is not loaded
		t.Errorf("num_mtp_layers with MTP false: %d %v", n, err)
	}
	m.Close()
	m, err = moert.Load(mtpModelDir(), &moert.LoadOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.Info("num_mtp_layers"); err != nil || n != 1 {
		t.Errorf("num_mtp_layers by default: %d %v", n, err)
	}
	m.Close()
	_, err = moert.Load(modelDir(), &moert.LoadOptions{KVCacheDtype: "bf16"})
	if !errors.Is(err, moert.ErrUnsupported) || !strings.Contains(err.Error(), "kv_cache_dtype bf16 needs device cuda") {
		t.Errorf("kv_cache_dtype bf16 on the CPU: %v", err)
	}
	_, err = moert.Load(modelDir(), &moert.LoadOptions{ActivationDtype: "bf16"})
	if !errors.Is(err, moert.ErrUnsupported) || !strings.Contains(err.Error(), "activation_dtype bf16 needs device cuda") {
		t.Errorf("activation_dtype bf16 on the CPU: %v", err)
	}
	_, err = moert.Load(modelDir(), &moert.LoadOptions{Attention: "sideways"})
	if !errors.Is(err, moert.ErrInvalidArgument) || !strings.Contains(err.Error(), `'attention' value "sideways"`) {
		t.Errorf("attention sideways: %v", err)
	}
}
