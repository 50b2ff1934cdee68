// Chat templates: Meta's official templates (from ../shared/assets, and
// CodeLlama-Instruct's from fixtures/codellama-instruct/) rendered as
// transformers' apply_chat_template renders them. The expected strings here
// were derived by reading the templates; fixtures/chat.json (made by
// fixtures/make_chat_fixtures.py, see its docstring) checks many more cases.
#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "support/test_support.h"
#include "tokenizer/chat_template.h"

namespace flint {
namespace {

using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

fs::path templates_dir() { return testing::shared_assets() / "tokenizers" / "chat_templates"; }

ChatTemplate official(const std::string& name) {
  fs::path path = templates_dir() / name;
  return ChatTemplate::parse(read(path), path.string());
}

ChatRenderOptions opts(bool add_generation_prompt, std::optional<std::string> date = std::nullopt) {
  ChatRenderOptions o;
  o.add_generation_prompt = add_generation_prompt;
  o.date_string = std::move(date);
  return o;
}

const ojson kSystemUser = ojson::parse(R"([{"role": "system", "content": "You are helpful."},
                                           {"role": "user", "content": " Hi there\n"}])");
const ojson kMultiTurn = ojson::parse(R"([{"role": "system", "content": "S"},
                                          {"role": "user", "content": "Hi"},
                                          {"role": "assistant", "content": " Hello! "},
                                          {"role": "user", "content": "How?"}])");

constexpr const char* kL3 = "<|begin_of_text|>";
constexpr const char* kEot = "<|eot_id|>";

TEST(ChatTemplate, Llama2Official) {
  FLINT_REQUIRE_ASSETS();
  ChatTemplate t = official("llama-2-chat.jinja");
  // strip() applies to the whole "<<SYS>>...content", so the user's leading space stays.
  EXPECT_EQ(t.render(kSystemUser, opts(true), "<s>", "</s>"),
            "<s>[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\n Hi there [/INST]");
  EXPECT_EQ(t.render(kMultiTurn, opts(false), "<s>", "</s>"),
            "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] How? [/INST]");
  EXPECT_EQ(t.render(ojson::parse(R"([{"role": "user", "content": "Q"}])"), opts(true), "<s>", "</s>"),
            "<s>[INST] Q [/INST]");
  try {
    t.render(ojson::parse(R"([{"role": "assistant", "content": "A"}])"), opts(true), "<s>", "</s>");
    FAIL() << "expected raise_exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), "Conversation roles must alternate user/assistant/user/assistant/...");
    EXPECT_EQ(e.context().file, (templates_dir() / "llama-2-chat.jinja").string());
  }
}

TEST(ChatTemplate, Llama2ConfigOfTheAssets) {
  FLINT_REQUIRE_ASSETS();
  std::optional<ChatTemplate> t = load_chat_template((testing::shared_assets() / "tokenizers" / "llama2").string());
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->render(kMultiTurn, opts(true), "<s>", "</s>"),
            official("llama-2-chat.jinja").render(kMultiTurn, opts(true), "<s>", "</s>"));
}

// CodeLlama-Instruct's official template (codellama/CodeLlama-*-Instruct-hf
// tokenizer_config.json, kept in fixtures/codellama-instruct/) is Llama 2's with
// `content | trim` for `content.strip()`: the same text for every conversation.
TEST(ChatTemplate, CodeLlamaInstructOfficial) {
  const fs::path dir = testing::source_dir() / "tests" / "tokenizer" / "fixtures" / "codellama-instruct";
  std::optional<ChatTemplate> t = load_chat_template(dir.string());
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->render(kSystemUser, opts(true), "<s>", "</s>"),
            "<s>[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\n Hi there [/INST]");
  EXPECT_EQ(t->render(kMultiTurn, opts(false), "<s>", "</s>"),
            "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] How? [/INST]");
  // An assistant prefill continued: no " </s>", and the code's indentation kept.
  ChatRenderOptions prefill = opts(false);
  prefill.continue_final_message = true;
  EXPECT_EQ(t->render(ojson::parse(R"([{"role": "user", "content": "Code?"},
                                       {"role": "assistant", "content": "def f(x):\n    "}])"),
                      prefill, "<s>", "</s>"),
            "<s>[INST] Code? [/INST] def f(x):\n    ");
  try {
    t->render(ojson::parse(R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])"), opts(true),
              "<s>", "</s>");
    FAIL() << "expected raise_exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), "Conversation roles must alternate user/assistant/user/assistant/...");
    EXPECT_EQ(e.context().file, (dir / "tokenizer_config.json").string());
  }
}

std::string llama31_system(const std::string& date, const std::string& system, bool tools = false) {
  return std::string(kL3) + "<|start_header_id|>system<|end_header_id|>\n\n" + (tools ? "Environment: ipython\n" : "") +
         "Cutting Knowledge Date: December 2023\nToday Date: " + date + "\n\n" + system + kEot;
}

TEST(ChatTemplate, Llama31Official) {
  FLINT_REQUIRE_ASSETS();
  for (const char* name : {"meta-llama-Llama-3.1-8B-Instruct.jinja", "meta-llama-Llama-3.3-70B-Instruct.jinja"}) {
    SCOPED_TRACE(name);
    ChatTemplate t = official(name);
    EXPECT_EQ(t.render(kSystemUser, opts(true), kL3, kEot),
              llama31_system("26 Jul 2024", "You are helpful.") +
                  "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
    EXPECT_EQ(t.render(kMultiTurn, opts(false, "23 Nov 2026"), kL3, kEot),
              llama31_system("23 Nov 2026", "S") +
                  "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHow?<|eot_id|>");
    EXPECT_EQ(t.render(ojson::parse(R"([{"role": "user", "content": "Q"}])"), opts(true), kL3, kEot),
              llama31_system("26 Jul 2024", "") +
                  "<|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
  }
}

const ojson kTools = ojson::parse(R"([{"type": "function", "function": {"name": "get_weather",
    "description": "Weather of a city", "parameters": {"type": "object",
    "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])");

const ojson kToolConversation = ojson::parse(R"([
  {"role": "system", "content": "Use tools."},
  {"role": "user", "content": "Weather in Paris?"},
  {"role": "assistant", "tool_calls": [{"type": "function",
      "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
  {"role": "tool", "content": "20C"},
  {"role": "ipython", "content": {"temp": 20}}])");

const char* kToolJson =
    "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n"
    "        \"description\": \"Weather of a city\",\n        \"parameters\": {\n"
    "            \"type\": \"object\",\n            \"properties\": {\n                \"city\": {\n"
    "                    \"type\": \"string\"\n                }\n            },\n"
    "            \"required\": [\n                \"city\"\n            ]\n        }\n    }\n}";

std::string tool_turns() {
  return "<|start_header_id|>assistant<|end_header_id|>\n\n"
         "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|>"
         "<|start_header_id|>ipython<|end_header_id|>\n\n\"20C\"<|eot_id|>"
         "<|start_header_id|>ipython<|end_header_id|>\n\n{\"temp\": 20}<|eot_id|>";
}

TEST(ChatTemplate, Llama3xToolsInTheFirstUserMessage) {
  FLINT_REQUIRE_ASSETS();
  for (const char* name : {"meta-llama-Llama-3.1-8B-Instruct.jinja", "meta-llama-Llama-3.2-3B-Instruct.jinja",
                           "meta-llama-Llama-3.3-70B-Instruct.jinja"}) {
    SCOPED_TRACE(name);
    ChatRenderOptions o = opts(true, "01 Jan 2025");
    o.tools = kTools;
    std::string expected = llama31_system("01 Jan 2025", "Use tools.", true) +
                           "<|start_header_id|>user<|end_header_id|>\n\n"
                           "Given the following functions, please respond with a JSON for a function call with its "
                           "proper arguments that best answers the given prompt.\n\n"
                           "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument "
                           "name and its value}.Do not use variables.\n\n" +
                           std::string(kToolJson) + "\n\nWeather in Paris?<|eot_id|>" + tool_turns() +
                           "<|start_header_id|>assistant<|end_header_id|>\n\n";
    EXPECT_EQ(official(name).render(kToolConversation, o, kL3, kEot), expected);
  }
}

TEST(ChatTemplate, Llama31ToolsInTheSystemMessageAndBuiltinTools) {
  FLINT_REQUIRE_ASSETS();
  ChatTemplate t = official("meta-llama-Llama-3.1-8B-Instruct.jinja");
  ChatRenderOptions o = opts(false, "01 Jan 2025");
  o.tools = kTools;
  o.extra = {{"tools_in_user_message", false}};
  EXPECT_EQ(t.render(ojson::parse(R"([{"role": "user", "content": "Hi"}])"), o, kL3, kEot),
            std::string(kL3) +
                "<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n"
                "Cutting Knowledge Date: December 2023\nToday Date: 01 Jan 2025\n\n"
                "You have access to the following functions. To call a function, please respond with JSON for a "
                "function call.Respond in the format {\"name\": function name, \"parameters\": dictionary of "
                "argument name and its value}.Do not use variables.\n\n" +
                kToolJson + "\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");

  ChatRenderOptions b = opts(false, "01 Jan 2025");
  b.extra = {{"builtin_tools", {"brave_search", "code_interpreter", "wolfram_alpha"}}};
  ojson call = ojson::parse(R"([{"role": "user", "content": "Search"},
      {"role": "assistant", "tool_calls": [{"function": {"name": "brave_search",
          "arguments": {"query": "x", "n": "2"}}}]}])");
  EXPECT_EQ(t.render(call, b, kL3, kEot),
            std::string(kL3) +
                "<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n"
                "Tools: brave_search, wolfram_alpha\n\n"
                "Cutting Knowledge Date: December 2023\nToday Date: 01 Jan 2025\n\n<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\nSearch<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n"
                "<|python_tag|>brave_search.call(query=\"x\", n=\"2\")<|eom_id|>");

  ojson two_calls = ojson::parse(R"([{"role": "user", "content": "Q"},
      {"role": "assistant", "tool_calls": [{"function": {"name": "a", "arguments": {}}},
                                           {"function": {"name": "b", "arguments": {}}}]}])");
  try {
    t.render(two_calls, opts(false), kL3, kEot);
    FAIL() << "expected raise_exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), "This model only supports single tool-calls at once!");
  }
}

TEST(ChatTemplate, Llama32DefaultDateIsToday) {
  FLINT_REQUIRE_ASSETS();
  char today[64];
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  today[std::strftime(today, sizeof today, "%d %b %Y", &local)] = '\0';
  ChatTemplate t = official("meta-llama-Llama-3.2-3B-Instruct.jinja");
  EXPECT_EQ(t.render(kSystemUser, opts(true), kL3, kEot),
            llama31_system(today, "You are helpful.") +
                "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, Llama3ConfigOfTheAssetsIsThe31Template) {
  FLINT_REQUIRE_ASSETS();
  std::optional<ChatTemplate> t = load_chat_template((testing::shared_assets() / "tokenizers" / "llama3").string());
  ASSERT_TRUE(t.has_value());
  ChatRenderOptions o = opts(true, "02 Feb 2025");
  o.tools = kTools;
  EXPECT_EQ(t->render(kToolConversation, o, kL3, kEot),
            official("meta-llama-Llama-3.1-8B-Instruct.jinja").render(kToolConversation, o, kL3, kEot));
}

TEST(ChatTemplate, BuiltinLlama2MatchesTheOfficialTemplate) {
  FLINT_REQUIRE_ASSETS();
  ChatTemplate builtin = builtin_chat_template(BuiltinChatFormat::llama2);
  ChatTemplate meta = official("llama-2-chat.jinja");
  for (const ojson& messages :
       {kSystemUser, kMultiTurn, ojson::parse(R"([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])"),
        ojson::parse(R"([{"role": "system", "content": ""}, {"role": "user", "content": "u"}])"),
        ojson::parse(R"([{"role": "system", "content": "only"}])")}) {
    SCOPED_TRACE(messages.dump());
    EXPECT_EQ(builtin.render(messages, opts(true), "<s>", "</s>"), meta.render(messages, opts(true), "<s>", "</s>"));
  }
  EXPECT_THROW(builtin.render(ojson::parse(R"([{"role": "assistant", "content": "b"}])"), opts(true), "<s>", "</s>"),
               Error);
}

TEST(ChatTemplate, BuiltinLlama3) {
  ChatTemplate t = builtin_chat_template(BuiltinChatFormat::llama3);
  EXPECT_EQ(t.render(kSystemUser, opts(true), kL3, kEot),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(t.render(kMultiTurn, opts(false), kL3, kEot),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHow?<|eot_id|>");
}

TEST(ChatTemplate, LoadPrefersChatTemplateJinjaAndReadsTemplateLists) {
  testing::TempDir dir;
  EXPECT_FALSE(load_chat_template(dir.path().string()).has_value());
  testing::write_text(dir / "tokenizer_config.json", R"({"bos_token": "<s>"})");
  EXPECT_FALSE(load_chat_template(dir.path().string()).has_value());
  testing::write_text(dir / "tokenizer_config.json",
                      R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})");
  EXPECT_EQ(load_chat_template(dir.path().string())->source(), "D");
  testing::write_text(dir / "chat_template.jinja", "J{{ bos_token }}\n");
  std::optional<ChatTemplate> t = load_chat_template(dir.path().string());
  EXPECT_EQ(t->origin(), (dir / "chat_template.jinja").string());
  EXPECT_EQ(t->render(ojson::array(), opts(true), "<s>", "</s>"), "J<s>");

  testing::TempDir bad;
  testing::write_text(bad / "tokenizer_config.json", R"({"chat_template": [{"name": "rag", "template": "R"}]})");
  EXPECT_THROW(load_chat_template(bad.path().string()), Error);
  testing::write_text(bad / "tokenizer_config.json", R"({"chat_template": 5})");
  EXPECT_THROW(load_chat_template(bad.path().string()), Error);
  testing::write_text(bad / "tokenizer_config.json", R"({"chat_template": "{% if %}"})");
  try {
    load_chat_template(bad.path().string());
    FAIL() << "expected a syntax error";
  } catch (const Error& e) {
    EXPECT_EQ(e.context().file, (bad / "tokenizer_config.json").string());
    EXPECT_NE(std::string(e.what()).find("line 1, column 7"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, MessagesAreValidated) {
  ChatTemplate t = builtin_chat_template(BuiltinChatFormat::llama3);
  EXPECT_THROW(t.render(ojson::object(), opts(true), "", ""), Error);
  EXPECT_THROW(t.render(ojson::array(), ChatRenderOptions{.extra = ojson::array()}, "", ""), Error);
  // As in jinja2, `5 | trim` is "5": non-string content is printed, not refused.
  EXPECT_EQ(t.render(ojson::parse(R"([{"role": "user", "content": 5}])"), opts(false), "", ""),
            "<|start_header_id|>user<|end_header_id|>\n\n5<|eot_id|>");
}

// A tokenizer with just enough behaviour for render_chat_prompt.
class FakeTokenizer : public Tokenizer {
 public:
  explicit FakeTokenizer(std::string kind) : kind_(std::move(kind)) {}
  std::vector<TokenId> encode(std::string_view, const EncodeOptions&) const override { return {}; }
  std::string token_bytes(TokenId id) const override { return id == 1 ? "<BOS>" : "<EOS>"; }
  int32_t vocab_size() const override { return 3; }
  bool is_special(TokenId) const override { return true; }
  std::optional<TokenId> token_to_id(std::string_view) const override { return std::nullopt; }
  std::optional<TokenId> bos_id() const override { return 1; }
  std::vector<TokenId> eos_ids() const override { return {2}; }
  std::string kind() const override { return kind_; }
  std::string decode(std::span<const TokenId>, bool) const override { return ""; }

 private:
  std::string kind_;
};

TEST(ChatTemplate, RenderChatPromptFallsBackToTheBuiltinFormat) {
  testing::TempDir dir;
  EXPECT_EQ(render_chat_prompt(dir.path().string(), FakeTokenizer("sentencepiece"), "S", "U"),
            "<BOS>[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST]");
  EXPECT_EQ(render_chat_prompt(dir.path().string(), FakeTokenizer("bpe"), "", "U"),
            "<BOS><|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  testing::write_text(dir / "tokenizer_config.json",
                      R"({"bos_token": {"content": "<b>"}, "eos_token": "<e>", "chat_template": "{{ bos_token }}{{ messages[-1].content }}{{ eos_token }}{{ add_generation_prompt }}"})");
  EXPECT_EQ(render_chat_prompt(dir.path().string(), FakeTokenizer("bpe"), "S", "U"), "<b>U<e>True");
}

// Cases rendered by transformers itself (fixtures/make_chat_fixtures.py).
ChatRenderOptions continuing() {
  ChatRenderOptions o;
  o.add_generation_prompt = false;
  o.continue_final_message = true;
  return o;
}

// continue_final_message, by transformers' rule (render_jinja_template appends
// "CONTINUE_FINAL_MESSAGE_TAG " to the final message and cuts there); the
// fixtures below check it on the official templates against transformers.
TEST(ChatTemplate, ContinueFinalMessage) {
  ChatTemplate t = ChatTemplate::parse(
      "{% for m in messages %}<{{ m.role }}>{{ m.content if m.content is string else m.content[-1].text }}</>"
      "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
      "inline.jinja");
  auto msgs = [](const char* json) { return ojson::parse(json); };
  // Printed as is: the rendering stops right after the content.
  EXPECT_EQ(t.render(msgs(R"([{"role": "user", "content": "q"}, {"role": "assistant", "content": "The answer "}])"),
                     continuing(), "", ""),
            "<user>q</><assistant>The answer ");
  // The last occurrence is the one continued.
  EXPECT_EQ(t.render(msgs(R"([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hi"}])"),
                     continuing(), "", ""),
            "<user>hi</><assistant>hi");
  // A template that prints the message as it is keeps its spaces, both ends.
  EXPECT_EQ(t.render(msgs(R"([{"role": "assistant", "content": "  go on  "}])"), continuing(), "", ""),
            "<assistant>  go on  ");
  // One that trims it: the cut drops the message's trailing whitespace too.
  ChatTemplate trimming =
      ChatTemplate::parse("{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}<end>{% endfor %}", "trim.jinja");
  EXPECT_EQ(trimming.render(msgs(R"([{"role": "assistant", "content": " a \n"}])"), continuing(), "", ""),
            "<assistant>a");
  // Content blocks: the last block with text.
  EXPECT_EQ(t.render(msgs(R"([{"role": "assistant", "content": [{"type": "text", "text": "one"},
                                                                {"type": "text", "text": "two"}]}])"),
                     continuing(), "", ""),
            "<assistant>two");

  auto message_of = [&](const ojson& messages, const ChatRenderOptions& o) {
    try {
      t.render(messages, o, "", "");
    } catch (const Error& e) {
      EXPECT_EQ(e.context().file, "inline.jinja");
      return e.message();
    }
    return std::string("no error");
  };
  ChatRenderOptions both = continuing();
  both.add_generation_prompt = true;
  EXPECT_NE(message_of(msgs(R"([{"role": "user", "content": "q"}])"), both)
                .find("continue_final_message and add_generation_prompt are not compatible"),
            std::string::npos);
  EXPECT_NE(message_of(msgs("[]"), continuing()).find("no messages"), std::string::npos);
  EXPECT_EQ(message_of(msgs(R"([{"role": "assistant"}])"), continuing()),
            "continue_final_message is set but the final message has no \"content\" to continue!");
  EXPECT_NE(message_of(msgs(R"([{"role": "assistant", "content": [{"type": "image"}]}])"), continuing())
                .find("could not find any text"),
            std::string::npos);
  auto render_error = [&](const std::string& source) {
    try {
      ChatTemplate::parse(source, "other.jinja").render(msgs(R"([{"role": "assistant", "content": "lost"}])"),
                                                        continuing(), "", "");
    } catch (const Error& e) {
      return e.message();
    }
    return std::string("no error");
  };
  // A template that never prints the content, and one that never names it.
  EXPECT_EQ(render_error("{% for m in messages %}[{{ m.role }}]{% if m.content %}.{% endif %}{% endfor %}"),
            "continue_final_message is set but the final message does not appear in the chat after applying the "
            "chat template! This can happen if the chat template deletes portions of the final message. Please "
            "verify the chat template and final message in your chat to ensure they are compatible.Final message to "
            "continue: lost\nRendered chat:\n[assistant].");
  EXPECT_EQ(render_error("{% for m in messages %}[{{ m.role }}]{% endfor %}"),
            "continue_final_message is set to \"content\" but this is not an accepted field in the chat_template");
}

TEST(ChatTemplate, MatchesTransformersFixtures) {
  FLINT_REQUIRE_ASSETS();
  const fs::path fixtures_dir = testing::source_dir() / "tests" / "tokenizer" / "fixtures";
  const fs::path fixtures = fixtures_dir / "chat.json";
  if (!fs::exists(fixtures))
    GTEST_SKIP() << fixtures << " not found: run tests/tokenizer/fixtures/make_chat_fixtures.py with transformers";
  ojson cases = ojson::parse(read(fixtures));
  ASSERT_FALSE(cases.empty());
  const fs::path tokenizers = testing::shared_assets() / "tokenizers";
  // "fixtures:<path>": a template kept in the repo (CodeLlama-Instruct's), else one of the assets.
  constexpr std::string_view kInRepo = "fixtures:";
  for (const ojson& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const std::string file = c["template"].get<std::string>();
    const fs::path path =
        file.starts_with(kInRepo) ? fixtures_dir / file.substr(kInRepo.size()) : tokenizers / file;
    std::optional<ChatTemplate> t;
    if (path.filename() == "tokenizer_config.json") t = load_chat_template(path.parent_path().string());
    else t = ChatTemplate::parse(read(path), file);
    ASSERT_TRUE(t.has_value());
    ChatRenderOptions o;
    o.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    o.tools = c["tools"];
    if (c["date_string"].is_string()) o.date_string = c["date_string"].get<std::string>();
    o.extra = c["extra"];
    o.continue_final_message = c.value("continue_final_message", false);
    std::string bos = c["bos_token"].get<std::string>(), eos = c["eos_token"].get<std::string>();
    if (c.contains("error")) {
      try {
        t->render(c["messages"], o, bos, eos);
        ADD_FAILURE() << "transformers raised: " << c["error"].get<std::string>();
      } catch (const Error& e) {
        EXPECT_EQ(e.message(), c["error"].get<std::string>());
      }
    } else {
      EXPECT_EQ(t->render(c["messages"], o, bos, eos), c["expected"].get<std::string>());
    }
  }
}

}  // namespace
}  // namespace flint
