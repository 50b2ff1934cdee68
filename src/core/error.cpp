#include "core/error.h"

namespace flint {
namespace {

std::string render(const std::string& message, const ErrorContext& c) {
  std::string out;
  auto part = [&out](const std::string& text) {
    if (!out.empty()) out += ": ";
    out += text;
  };
  if (!c.file.empty()) part(c.file);
  if (!c.tensor.empty()) part("tensor '" + c.tensor + "'");
  if (!c.field.empty()) part("field '" + c.field + "'");
  part(message);
  return out;
}

}  // namespace

Error::Error(std::string message, ErrorContext context)
    : std::runtime_error(render(message, context)), message_(std::move(message)), context_(std::move(context)) {}

Error Error::with_file(const std::string& file) const {
  ErrorContext c = context_;
  if (c.file.empty()) c.file = file;
  return Error(message_, c);
}

Error Error::with_tensor(const std::string& tensor) const {
  ErrorContext c = context_;
  if (c.tensor.empty()) c.tensor = tensor;
  return Error(message_, c);
}

Error Error::with_field(const std::string& field) const {
  ErrorContext c = context_;
  if (c.field.empty()) c.field = field;
  return Error(message_, c);
}

}  // namespace flint
