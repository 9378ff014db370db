#include "engine/session.h"

#include <mutex>

#include "engine/served_model.h"
#include "kv/kv_transfer.h"
#include "util/error.h"

namespace moert {

Session::Session(std::shared_ptr<ServedModel> service)
    : service_(std::move(service)), kv_(&service_->instance().cache()) {}

Session Session::import_image(std::shared_ptr<ServedModel> service, const void* data, size_t size) {
  ModelInstance& m = service->instance();
  const KvImageView v = parse_kv_image(data, size, m.kv_image_shape());
  Session s(std::move(service));
  {
    std::lock_guard<std::mutex> lock(m.step_mutex());  // backend copies: not while a forward runs
    import_kv(m.network().backend(), m.cache(), s.kv_, m.config().num_hidden_layers, v);
  }
  s.tokens_ = v.token_ids;
  s.last_logits_ = v.last_logits;
  return s;
}

void Session::eval(const int32_t* tokens, int64_t n, bool all_logits, float* logits) {
  if (n < 1) fail(ErrorCode::kInvalidArgument, "n must be at least 1");
  ModelInstance& m = service_->instance();
  m.require_direct_forward();
  service_->engine().eval(kv_, tokens, n, all_logits, logits);
  tokens_.insert(tokens_.end(), tokens, tokens + n);
  const int64_t vocab = m.config().vocab_size;
  const float* last = logits + (all_logits ? n - 1 : 0) * vocab;
  last_logits_.assign(last, last + vocab);
}

int64_t Session::vocab_size() const {
  return service_->instance().config().vocab_size;
}

void Session::truncate(int64_t length) {
  if (length < 0) fail(ErrorCode::kInvalidArgument, "length must be >= 0");
  if (length > kv_.length())
    fail(ErrorCode::kInvalidArgument, "cannot truncate to " + std::to_string(length) +
                                          " tokens: the sequence has " + std::to_string(kv_.length()));
  kv_.truncate(length);
  if (static_cast<size_t>(length) != tokens_.size()) {
    tokens_.resize(length);
    last_logits_.clear();
  }
}

std::vector<uint8_t> Session::export_image() const {
  if (tokens_.empty()) fail(ErrorCode::kInvalidArgument, "the session holds no tokens: nothing to export");
  if (last_logits_.empty())
    fail(ErrorCode::kInvalidArgument,
         "the session was truncated since its last evaluation: evaluate a token before exporting (the image "
         "carries the logits after its last token)");
  ModelInstance& m = service_->instance();
  std::lock_guard<std::mutex> lock(m.step_mutex());  // backend copies: not while a forward runs
  return export_kv(m.network().backend(), m.cache(), kv_, m.config().num_hidden_layers, m.kv_image_shape(),
                   tokens_, last_logits_);
}

std::shared_ptr<RequestStream> Session::generate(GenerationParams params) && {
  if (last_logits_.empty())
    fail(ErrorCode::kFormat, "KV image rejected (logits): it has no logits of its last token to sample from");
  return service_->engine().submit_resumed(std::move(tokens_), std::move(kv_), std::move(last_logits_),
                                           std::move(params));
}

}  // namespace moert
