#include "engine/step_policy.h"

#include <mutex>

#include "engine/model_instance.h"
#include "ep/placement.h"

namespace moert {
namespace {

class SoloPolicy final : public StepPolicy {
 public:
  bool collective() const override { return false; }
  Decision agree(bool has_work, bool stopping) override {
    if (stopping) return Decision::kExit;
    return has_work ? Decision::kStep : Decision::kIdle;
  }
};

class GroupPolicy final : public StepPolicy {
 public:
  explicit GroupPolicy(ModelInstance& model) : model_(model), ep_(*model.ep()) {}
  bool collective() const override { return true; }
  Decision agree(bool has_work, bool stopping) override {
    int64_t flags[2] = {has_work ? 1 : 0, stopping ? 1 : 0};
    ep::run_collective(ep_.transport(), [&] { ep_.transport().all_reduce_sum(flags, 2); });
    if (flags[1] == ep_.size()) return Decision::kExit;  // every rank is stopping
    return flags[0] == 0 ? Decision::kIdle : Decision::kStep;
  }
  void after_step() override {
    const int64_t interval = model_.options().eplb_interval;
    if (interval <= 0 || ++steps_ % interval != 0) return;
    std::lock_guard<std::mutex> lock(model_.step_mutex());
    ep::run_collective(ep_.transport(), [&] {
      ep::EplbOptions eo;
      ep::rebalance(ep_, model_.network(), eo);
    });
  }

 private:
  ModelInstance& model_;
  ep::ExpertParallel& ep_;
  int64_t steps_ = 0;
};

}  // namespace

std::unique_ptr<StepPolicy> make_solo_policy() {
  return std::make_unique<SoloPolicy>();
}

std::unique_ptr<StepPolicy> make_group_policy(ModelInstance& model) {
  return std::make_unique<GroupPolicy>(model);
}

}  // namespace moert
