#include "engine/model_instance.h"

#include <algorithm>

#include "ep/transport_mpi.h"
#include "ep/transport_nccl.h"
#include "util/error.h"
#include "weights/layer_check.h"
#include "weights/weight_scan.h"

namespace moert {

std::shared_ptr<ModelInstance> ModelInstance::load(const std::string& dir, const LoadOptions& opts,
                                                   const ProgressFn& progress) {
  auto step = [&](double f, const char* stage) {
    if (progress && !progress(f, stage)) fail(ErrorCode::kCancelled, "model load cancelled");
  };
  std::shared_ptr<ModelInstance> m(new ModelInstance());
  m->dir_ = dir;
  m->opts_ = opts;
  step(0.0, "config");
  m->cfg_ = load_model_config(dir);
  // The 4-bit expert kernels exist on the CPU backend only: say so before anything is mapped or started.
  if (m->cfg_.quant.expert_q4_group > 0 && opts.device != "cpu")
    fail(ErrorCode::kUnsupported, dir +
                                      "/config.json: quantization_config.quant_method \"moert_q4\" (4-bit "
                                      "experts) runs on device \"cpu\" only, not \"" +
                                      opts.device + "\"; load the original checkpoint there");
  step(0.05, "weights");
  m->store_ = std::make_shared<WeightStore>(dir);
  check_layer_count(*m->store_, m->cfg_.num_hidden_layers, m->cfg_.num_nextn_predict_layers,
                    dir + "/config.json");
  if (opts.check_weights) {
    step(0.1, "weight check");
    scan_weights(*m->store_, opts.threads);
  }
  step(0.5, "binding");
  const std::string transport = !opts.ep_transport.empty() ? opts.ep_transport
                                : opts.ep_size > 1         ? "mpi"
                                                           : "none";
  // The expert-parallel transport comes first: with NCCL it picks this rank's GPU, which the backend uses.
  std::shared_ptr<ep::Transport> t;
  int gpu = 0;
  if (transport == "inproc") {
    if (opts.ep_size != 1)
      fail(ErrorCode::kInvalidArgument,
           "ep_transport \"inproc\" is a one-rank group (ep_size 1); ranks in "
           "separate processes need \"mpi\"");
    t = ep::make_in_process_group(1, {std::chrono::milliseconds(opts.ep_timeout_ms), {}})[0];
  } else if (transport == "mpi" || transport == "nccl") {
    if (transport == "nccl" && opts.device != "cuda")
      fail(ErrorCode::kInvalidArgument, "ep_transport \"nccl\" is for GPU ranks: set device \"cuda\"");
    std::shared_ptr<ep::Transport> mpi;
    if (transport == "mpi" || opts.ep_size > 1) {
      ep::mpi_ensure_initialized();
      const int world = ep::mpi_world_size();
      if (opts.ep_size != world)
        fail(ErrorCode::kInvalidArgument,
             "ep_size " + std::to_string(opts.ep_size) + " but MPI_COMM_WORLD has " + std::to_string(world) +
                 " processes (run under mpirun -np " + std::to_string(opts.ep_size) + ")");
      mpi = ep::make_mpi_transport({std::chrono::milliseconds(opts.ep_timeout_ms), {}});
    }
    if (transport == "mpi") {
      t = mpi;
    } else {
      // One GPU per rank (rank modulo the node's devices); the unique id travels over MPI when there are
      // peers.
      ep::NcclOptions no;
      no.rank = mpi ? mpi->rank() : 0;
      no.size = opts.ep_size;
      no.bootstrap = mpi;
      no.timeout = std::chrono::milliseconds(opts.ep_timeout_ms);
      auto nccl = ep::make_nccl_transport(no);
      gpu = nccl->device();
      t = nccl;
    }
  } else if (transport != "none") {
    fail(ErrorCode::kInvalidArgument, "unknown ep_transport \"" + transport + "\"");
  } else if (opts.ep_size != 1) {
    fail(ErrorCode::kInvalidArgument,
         "ep_size " + std::to_string(opts.ep_size) + " needs ep_transport \"mpi\"");
  }
  if (opts.device == "cpu") {
    m->backend_ = make_cpu_backend(opts.threads, opts.batch_invariant);
  } else if (opts.device == "cuda") {
    if (opts.batch_invariant)
      fail(ErrorCode::kUnsupported,
           "batch_invariant is a CPU backend mode (cuBLASLt picks kernels by shape)");
    m->backend_ = make_cuda_backend(gpu);  // the CUDA provider library (runtime/provider)
  } else {
    fail(ErrorCode::kUnsupported, "device \"" + opts.device + "\" is not available in this build");
  }
  // Activations between ops: bf16 by default on a GPU (half the bytes, fp32 math), fp32 on the CPU.
  DType act_dtype = opts.device == "cpu" ? DType::kF32 : DType::kBF16;
  if (opts.activation_dtype == "fp32")
    act_dtype = DType::kF32;
  else if (opts.activation_dtype == "bf16")
    act_dtype = DType::kBF16;
  else if (opts.activation_dtype != "auto")
    fail(ErrorCode::kInvalidArgument, "unknown activation_dtype \"" + opts.activation_dtype + "\"");
  if (act_dtype == DType::kBF16 && !m->backend_->supports_bf16_activations())
    fail(ErrorCode::kUnsupported, "activation_dtype bf16 needs device cuda (the CPU's activations are fp32)");
  m->backend_->set_act_dtype(act_dtype);
  ModelOptions mo;
  mo.act_mode = opts.act_mode;
  mo.attention = opts.attention;
  mo.load_mtp = opts.load_mtp;
  mo.graphs = opts.cuda_graphs;
  mo.max_graph_batch = opts.max_batch;
  if (t) {
    const int64_t layers = m->cfg_.num_hidden_layers + (opts.load_mtp ? m->cfg_.num_nextn_predict_layers : 0);
    ep::Placement p =
        ep::contiguous_placement(layers, m->cfg_.n_routed_experts, t->size(), opts.ep_redundant);
    ep::EpOptions eo;
    eo.overlap = opts.ep_overlap > 0 || (opts.ep_overlap < 0 && !t->single_host());
    eo.max_ranks_per_token = opts.ep_max_ranks_per_token;
    m->ep_ = std::make_shared<ep::ExpertParallel>(t, *m->backend_, p, eo);
    // Ranks loaded differently (another model, other options) would pair exchanges of different kinds.
    ep::run_collective(*t, [&] {
      m->ep_->check_same_settings(
          {{"hidden_size", m->cfg_.hidden_size},
           {"num_experts_per_tok", m->cfg_.num_experts_per_tok},
           {"activations (fp8)", opts.act_mode == ActMode::kFp8 ? 1 : 0},
           {"activation_dtype (bf16)", m->backend_->act_dtype() == DType::kBF16 ? 1 : 0},
           {"eplb_interval", opts.eplb_interval},
           {"batch_invariant", opts.batch_invariant ? 1 : 0}});
    });
    mo.moe_hook = m->ep_;
    mo.bind_expert = m->ep_->bind_filter();
  }
  m->model_ = std::make_unique<DeepseekNetwork>(m->cfg_, m->store_, *m->backend_, mo);
  step(0.9, "kv cache");
  DType cache_dtype = opts.device == "cpu" ? DType::kF32 : DType::kBF16;
  if (opts.kv_cache_dtype == "fp32")
    cache_dtype = DType::kF32;
  else if (opts.kv_cache_dtype == "bf16")
    cache_dtype = DType::kBF16;
  else if (opts.kv_cache_dtype != "auto")
    fail(ErrorCode::kInvalidArgument, "unknown kv_cache_dtype \"" + opts.kv_cache_dtype + "\"");
  if (cache_dtype == DType::kBF16 && opts.device == "cpu")
    fail(ErrorCode::kUnsupported, "kv_cache_dtype bf16 needs device cuda (the CPU cache is fp32)");
  m->cache_ = std::make_unique<LatentCache>(*m->backend_, m->model_->cache_layers(), m->cfg_.kv_cache_width(),
                                            opts.page_rows, opts.kv_cache_bytes, cache_dtype);
  m->cache_->set_prefix_cache(opts.prefix_cache);
  step(1.0, "ready");
  return m;
}

void ModelInstance::require_direct_forward() const {
  if (ep_ && ep_->size() > 1)
    fail(ErrorCode::kUnsupported,
         "with expert parallelism over " + std::to_string(ep_->size()) +
             " ranks every forward is collective: use generation (the engines of all "
             "ranks step together), not direct logits");
}

KvImageShape ModelInstance::kv_image_shape() {
  std::call_once(fingerprint_once_, [&] {
    const std::string config = model_config_to_json(cfg_);
    uint64_t h = fnv1a64(config.data(), config.size());
    for (const auto& [name, t] : store_->tensors_by_name()) {
      h = fnv1a64(name.data(), name.size(), h);
      h = fnv1a64(&t->dtype, sizeof(t->dtype), h);
      h = fnv1a64(t->shape.data(), t->shape.size() * sizeof(int64_t), h);
      const size_t edge = std::min<size_t>(t->nbytes, 64);
      h = fnv1a64(t->data, edge, h);
      h = fnv1a64(t->data + t->nbytes - edge, edge, h);
    }
    fingerprint_ = h;
  });
  KvImageShape s;
  s.fingerprint = fingerprint_;
  s.layers = cfg_.num_hidden_layers;
  s.width = cfg_.kv_cache_width();
  s.vocab = cfg_.vocab_size;
  s.max_tokens = cfg_.max_position_embeddings;
  return s;
}

}  // namespace moert
