#include "tools/flint/commands.h"

namespace flint::cli {

std::vector<CommandAdder>& command_registry() {
  static std::vector<CommandAdder> registry;
  return registry;
}

}  // namespace flint::cli
