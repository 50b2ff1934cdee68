#include "runtime/step_sampler.h"

#include "core/error.h"

namespace flint {
namespace {

void sample_on_host(const Tensor& host, SampleOutcome& out, const SampleTask& task, int64_t row) {
  const auto V = static_cast<size_t>(host.size(1));
  try {
    out.token = task.sampler->sample({host.data<float>() + static_cast<size_t>(row) * V, V});
  } catch (const std::exception& e) {
    out.error = e.what();
  }
}

// Each task's token from its RowSample, or the error device_result() throws.
void read_device_results(std::span<const SampleTask> tasks, std::span<const size_t> task_of_spec,
                         const std::vector<RowSample>& drawn, std::vector<SampleOutcome>& out) {
  FLINT_CHECK(drawn.size() == task_of_spec.size(), "sampling: {} results for {} draws", drawn.size(),
              task_of_spec.size());
  for (size_t s = 0; s < drawn.size(); ++s) {
    SampleOutcome& o = out[task_of_spec[s]];
    try {
      o.token = tasks[task_of_spec[s]].sampler->device_result(drawn[s]);
    } catch (const std::exception& e) {
      o.error = e.what();
    }
  }
}

std::vector<RowSamplingSpec> device_specs(const Tensor& logits, std::span<const SampleTask> tasks,
                                          std::vector<PenalizedToken>& penalties) {
  std::vector<RowSamplingSpec> specs;
  for (const SampleTask& t : tasks) {
    FLINT_CHECK(t.row >= 0 && t.row < logits.size(0), "sample_step: row {} of {}", t.row, logits.size(0));
    specs.push_back(t.sampler->device_spec(static_cast<int32_t>(t.row), penalties));
  }
  return specs;
}

}  // namespace

bool can_sample_async(const Backend& backend, const Tensor& logits, std::span<const SampleTask> tasks) {
  if (tasks.empty() || logits.device() != backend.device() || !backend.samples_on_device()) return false;
  for (const SampleTask& t : tasks)
    if (t.sampler->needs_host_row()) return false;
  return true;
}

void sample_step_async(Backend& backend, const Tensor& logits, std::span<const SampleTask> tasks) {
  FLINT_CHECK(can_sample_async(backend, logits, tasks),
              "sample_step_async: these tasks need the host (see can_sample_async)");
  std::vector<PenalizedToken> penalties;
  const std::vector<RowSamplingSpec> specs = device_specs(logits, tasks, penalties);
  backend.sample_rows_async(logits, specs, penalties);
}

std::vector<SampleOutcome> collect_sample_step(Backend& backend, std::span<const SampleTask> tasks) {
  std::vector<SampleOutcome> out(tasks.size());
  std::vector<size_t> task_of_spec(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) task_of_spec[i] = i;
  read_device_results(tasks, task_of_spec, backend.collect_samples(), out);
  return out;
}

std::vector<SampleOutcome> sample_step(Backend& backend, const Tensor& logits, std::span<const SampleTask> tasks) {
  FLINT_CHECK(logits.dtype() == DType::f32 && logits.dim() == 2, "sample_step: logits must be f32 [rows, vocab]");
  std::vector<SampleOutcome> out(tasks.size());
  if (tasks.empty()) return out;
  for (const SampleTask& t : tasks)
    FLINT_CHECK(t.row >= 0 && t.row < logits.size(0), "sample_step: row {} of {}", t.row, logits.size(0));

  if (logits.device() != backend.device() || !backend.samples_on_device()) {
    const Tensor host = logits.device() == Device::cpu
                            ? (logits.is_contiguous() ? logits : logits.contiguous_copy())
                            : backend.to_host(logits);
    for (size_t i = 0; i < tasks.size(); ++i) sample_on_host(host, out[i], tasks[i], tasks[i].row);
    return out;
  }

  std::vector<RowSamplingSpec> specs;
  std::vector<PenalizedToken> penalties;
  std::vector<size_t> on_device;  // task index of each spec
  for (size_t i = 0; i < tasks.size(); ++i) {
    const SampleTask& t = tasks[i];
    if (t.sampler->needs_host_row()) {
      // Copied before sample_rows() may overwrite other rows; this one it leaves alone.
      const Tensor row = backend.to_host(logits.slice(0, t.row, t.row + 1));
      sample_on_host(row, out[i], t, 0);
    } else {
      specs.push_back(t.sampler->device_spec(static_cast<int32_t>(t.row), penalties));
      on_device.push_back(i);
    }
  }
  if (specs.empty()) return out;
  read_device_results(tasks, on_device, backend.sample_rows(logits, specs, penalties), out);
  return out;
}

}  // namespace flint
