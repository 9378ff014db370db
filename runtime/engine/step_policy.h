// How the engine's one scheduler loop agrees to take a step: alone, or together with the other ranks of an
// expert-parallel group, where every forward is a collective that every rank must join.
#pragma once
#include <memory>

namespace moert {

class ModelInstance;

class StepPolicy {
 public:
  enum class Decision { kStep, kIdle, kExit };
  virtual ~StepPolicy() = default;
  // Every forward is a collective (a rank with no sequence still steps). Then the loop asks every round,
  // because other ranks may have work when this one has none; otherwise it sleeps until there is local work
  // (or a stop) before it asks.
  virtual bool collective() const = 0;
  // This rank has work / is stopping: step now, idle (no work anywhere), or exit (the engine ends). Throws
  // what a failed agreement threw (the group is then gone).
  virtual Decision agree(bool has_work, bool stopping) = 0;
  // After each step (expert re-placement every eplb_interval steps). Throws as agree does.
  virtual void after_step() {}
};

// A model of its own: steps when it has work, exits as soon as it is stopping.
std::unique_ptr<StepPolicy> make_solo_policy();
// The expert-parallel group of `model` (model.ep() must be set): the ranks all-reduce {ranks with work,
// ranks stopping} before each step; when any rank has work every rank steps; when none has they idle; they
// exit together once every rank is stopping. Every eplb_interval steps they re-place the experts (EPLB).
std::unique_ptr<StepPolicy> make_group_policy(ModelInstance& model);

}  // namespace moert
