// flint tokenize / flint detokenize: text <-> ids with a model directory's
// tokenizer (any directory holding tokenizer files; no weights needed).
//
//   flint tokenize --model DIR [--ids|--pieces] [--no-bos] (TEXT | --file F)
//   flint detokenize --model DIR IDS...
//
// tokenize prints the ids (or the vocabulary's token strings with --pieces)
// separated by spaces and one newline. --file tokenizes the exact bytes of F.
// detokenize prints exactly the decoded text, with no newline added, so that
// `flint detokenize ... > out` reproduces the original bytes; ids may also be
// given as one argument separated by spaces or commas (tokenize's output).
#include <fmt/format.h>

#include <charconv>
#include <cstdio>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"
#include "tools/flint/commands.h"

namespace flint::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  std::string text;
  std::string file;
  bool pieces = false;
  bool ids = false;
  bool no_bos = false;
  bool has_text = false;  // TEXT given (it may be empty)
};

// Pieces are printed on one line separated by spaces, so the bytes that would
// break that up (controls, space, backslash) are escaped.
std::string printable_piece(const std::string& piece) {
  std::string out;
  for (unsigned char c : piece) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      case ' ': out += "\\x20"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out += fmt::format("\\x{:02x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

void write_stdout(const std::string& s) {
  if (!s.empty() && std::fwrite(s.data(), 1, s.size(), stdout) != s.size()) fail("cannot write to stdout");
  std::fflush(stdout);
}

void run_tokenize(const TokenizeOptions& o) {
  FLINT_CHECK(o.has_text || !o.file.empty(), ErrorContext{.field = "TEXT"},
              "give the text to tokenize, or --file");
  const auto tokenizer = load_tokenizer(o.model);
  const std::string input = o.file.empty() ? o.text : read_file(o.file);
  const auto ids = tokenizer->encode(input, {.add_special = !o.no_bos});
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ' ';
    line += o.pieces ? printable_piece(tokenizer->token_piece(ids[i])) : std::to_string(ids[i]);
  }
  write_stdout(line + "\n");
}

std::vector<TokenId> parse_ids(const std::vector<std::string>& args) {
  std::vector<TokenId> ids;
  for (const std::string& arg : args) {
    size_t pos = 0;
    while (pos < arg.size()) {
      const size_t start = arg.find_first_not_of(" ,\t\n", pos);
      if (start == std::string::npos) break;
      size_t end = arg.find_first_of(" ,\t\n", start);
      if (end == std::string::npos) end = arg.size();
      const std::string_view word(arg.data() + start, end - start);
      TokenId id = 0;
      const auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
      FLINT_CHECK(ec == std::errc() && ptr == word.data() + word.size(), ErrorContext{.field = "IDS"},
                  "'{}' is not a token id", word);
      ids.push_back(id);
      pos = end;
    }
  }
  return ids;
}

void run_detokenize(const std::string& model, const std::vector<std::string>& args) {
  const std::vector<TokenId> ids = parse_ids(args);
  const auto tokenizer = load_tokenizer(model);
  for (TokenId id : ids)
    FLINT_CHECK(id >= 0 && id < tokenizer->vocab_size(), ErrorContext{.field = "IDS"},
                "token id {} is out of range: the vocabulary of {} has ids 0..{}", id, model,
                tokenizer->vocab_size() - 1);
  write_stdout(tokenizer->decode(ids));
}

void add_tokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "print the token ids (or pieces) of a text");
  cmd->add_option("--model,-m", o->model, "directory with tokenizer.json or tokenizer.model")->required();
  auto* ids = cmd->add_flag("--ids", o->ids, "print token ids (the default)");
  auto* pieces = cmd->add_flag("--pieces", o->pieces, "print the vocabulary's token strings");
  ids->excludes(pieces);
  cmd->add_flag("--no-bos", o->no_bos, "add no special tokens (BOS/EOS)");
  auto* text = cmd->add_option("text", o->text, "text to tokenize");
  auto* file = cmd->add_option("--file,-f", o->file, "tokenize the exact bytes of this file");
  text->excludes(file);
  cmd->callback([o, text] {
    o->has_text = text->count() > 0;
    run_tokenize(*o);
  });

  auto model = std::make_shared<std::string>();
  auto id_args = std::make_shared<std::vector<std::string>>();
  CLI::App* de = app.add_subcommand("detokenize", "print the text of token ids");
  de->add_option("--model,-m", *model, "directory with tokenizer.json or tokenizer.model")->required();
  de->add_option("ids", *id_args, "token ids (separate arguments, or one list split by spaces/commas)")
      ->required()
      ->allow_extra_args();
  de->callback([model, id_args] { run_detokenize(*model, *id_args); });
}

FLINT_REGISTER_COMMAND(add_tokenize);

}  // namespace
}  // namespace flint::cli
