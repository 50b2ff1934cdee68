// The Jinja subset behind chat templates: each case is what jinja2 (in
// transformers' environment: trim_blocks, lstrip_blocks, default Undefined)
// renders for the template and context.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/jinja_template.h"

namespace flint::jinja {
namespace {

using ojson = nlohmann::ordered_json;

std::string render(const std::string& source, const ojson& context = ojson::object(), const RenderLimits& limits = {}) {
  Object ctx;
  for (const auto& [k, v] : context.items()) ctx.set(k, from_json(v));
  return Template::parse(source, "test.jinja").render(ctx, limits);
}

// The message of the flint::Error that rendering throws ("" if none).
std::string error_of(const std::string& source, const ojson& context = ojson::object(), const RenderLimits& limits = {}) {
  try {
    render(source, context, limits);
  } catch (const Error& e) {
    EXPECT_EQ(e.context().file, "test.jinja");
    return e.what();
  }
  return "";
}

struct Case {
  const char* source;
  const char* expected;
  const char* context = "{}";
};

void check(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.source);
    EXPECT_EQ(render(c.source, ojson::parse(c.context)), c.expected);
  }
}

TEST(Jinja, Arithmetic) {
  check({
      {"{{ 1 + 2 }}", "3"},
      {"{{ 7 / 2 }}|{{ 4 / 2 }}", "3.5|2.0"},
      {"{{ 7 // 2 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 7 % -3 }}", "3|-4|2|-2"},
      {"{{ 7.5 // 2 }}|{{ -7.5 % 2 }}", "3.0|0.5"},
      {"{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ 2 * 3 + 1 }}|{{ 2 * (3 + 1) }}", "1024|0.5|7|8"},
      {"{{ 1 + 2.0 }}|{{ true + 1 }}|{{ -(3) }}|{{ +4 }}", "3.0|2|-3|4"},
      {"{{ 'ab' * 3 }}|{{ 2 * [0] }}", "ababab|[0, 0]"},
      {"{{ [1, 2] + [3] }}", "[1, 2, 3]"},
      {"{{ 'a' ~ 1 ~ none ~ true ~ nothing }}", "a1NoneTrue"},
  });
}

TEST(Jinja, FloatsPrintLikePython) {
  check({
      {"{{ 1.0 }}|{{ 0.1 + 0.2 }}|{{ 1.5e-5 }}|{{ 0.0001 }}", "1.0|0.30000000000000004|1.5e-05|0.0001"},
      {"{{ 1e15 }}|{{ 1e16 }}|{{ 123456789.125 }}|{{ -0.0 }}", "1000000000000000.0|1e+16|123456789.125|-0.0"},
      {"{{ x }}|{{ x | tojson }}", "2.5e-07|2.5e-07", R"({"x": 2.5e-7})"},
  });
}

TEST(Jinja, ComparisonsAndLogic) {
  check({
      {"{{ 1 < 2 < 3 }}|{{ 3 > 2 > 2 }}|{{ 1 == 1.0 }}|{{ true == 1 }}|{{ 'a' != 'b' }}", "True|False|True|True|True"},
      {"{{ 'b' in 'abc' }}{{ 2 in [1, 2] }}{{ 'k' in {'k': 1} }}{{ 3 not in [1] }}", "TrueTrueTrueTrue"},
      {"{{ 'yes' if 0 else 'no' }}|{{ 'x' if false }}|{{ 'a' if 1 else 'b' if 0 else 'c' }}", "no||a"},
      {"{{ none or 'd' }}|{{ 0 and 1 }}|{{ 'x' and 'y' }}|{{ not 1 == 2 }}", "d|0|y|True"},
      {"{{ [1, 2] == [1, 2] }}|{{ [1, 2] < [1, 3] }}|{{ 'ab' < 'b' }}", "True|True|True"},
  });
}

TEST(Jinja, FiltersAndTestsBindTighterThanOperators) {
  check({
      {"{{ 'a' + 'b' | upper }}", "aB"},
      {"{{ -2 | abs }}", "2"},
      {"{{ not x is defined }}|{{ 1 + x | length }}", "False|4", R"({"x": "abc"})"},
      {"{{ x is not none and x is string }}", "True", R"({"x": "s"})"},
      {"{{ 6 is divisibleby 3 }}{{ 3 is odd }}{{ none is sameas none }}{{ false is sameas false }}", "TrueTrueTrueTrue"},
  });
}

TEST(Jinja, LiteralsAndSubscripts) {
  check({
      {R"({{ 'a\nb\t\'\u00e9\x41' }})", "a\nb\t'\xc3\xa9" "A"},
      {R"({{ "say \"hi\"" }}|{{ 'a' 'b' }}|{{ 'c:\d' }})", "say \"hi\"|ab|c:\\d"},
      {"{{ 'abc'[1] }}{{ 'abc'[-1] }}{{ [1, 2, 3][1:] }}{{ 'hello'[::-1] }}{{ [1, 2, 3, 4][-2:] }}",
       "bc[2, 3]olleh[3, 4]"},
      {"{{ [1, 2, 3][::2] }}|{{ [1, 2, 3][5:] }}|{{ 'h\xc3\xa9llo'[1:3] }}", "[1, 3]|[]|\xc3\xa9l"},
      {"{{ {'a': 1, 'b': [true, none, 'x', 1.5]} }}", "{'a': 1, 'b': [True, None, 'x', 1.5]}"},
      {"{{ d.role }}{{ d['role'] }}{{ d['items'] }}{{ d.x.y }}{{ d.list.0 }}", "useruser5zq",
       R"({"d": {"role": "user", "items": 5, "x": {"y": "z"}, "list": ["q"]}})"},
      {"{{ [1, 2][5] is defined }}|{{ d.nope is defined }}|{{ d['nope'] is defined }}", "False|False|False",
       R"({"d": {}})"},
  });
}

TEST(Jinja, PythonMethods) {
  check({
      {"{{ '  x  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  x '.lstrip() }}|{{ ' x  '.rstrip() }}|", "x|a|x | x|"},
      {"{{ 'a,b'.split(',') }}|{{ ' a b  c '.split() }}|{{ 'a,b,c'.split(',', 1) }}",
       "['a', 'b']|['a', 'b', 'c']|['a', 'b,c']"},
      {"{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'abc'.startswith('b') }}", "TrueTrueFalse"},
      {"{{ 'aXb'.upper() }}{{ 'AbC'.lower() }}|{{ 'hello wORLD'.title() }}|{{ 'hello World'.capitalize() }}",
       "AXBabc|Hello World|Hello world"},
      {"{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'abcb'.find('b') }}|{{ 'abcb'.count('b') }}|{{ '-'.join(['x', 'y']) }}",
       "bba|1|2|x-y"},
      {"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d.keys() | list }}{{ d.values() | list }}"
       "{{ d.get('z', 'none') }}{{ d.get('a') }}{{ d.get('z') }}",
       "a=1;b=2;['a', 'b'][1, 2]none1None", R"({"d": {"a": 1, "b": 2}})"},
      {"{{ [1, 2, 2].count(2) }}{{ [1, 2].index(2) }}", "21"},
  });
}

TEST(Jinja, UnicodeFollowsPythonStr) {
  check({
      {"[{{ s | trim }}]|[{{ s.strip() }}]", "[x]|[x]", "{\"s\": \"\\u00a0 x\\u3000\\n\"}"},
      {"{{ 'h\xc3\xa9llo' | length }}|{{ 'h\xc3\xa9llo'[1] }}|{{ '\xc3\xa9' | tojson }}", "5|\xc3\xa9|\"\xc3\xa9\""},
  });
}

TEST(Jinja, WhitespaceControl) {
  check({
      {"a  {{- 'b' -}}  c", "abc"},
      {"a \n {%- if true -%} \n b {%- endif %}", "ab"},
      {"{% if true %}\nx\n{% endif %}\ny", "x\ny"},                 // trim_blocks
      {"  {% if true %}\n  x\n  {% endif %}\ny", "  x\ny"},         // lstrip_blocks
      {"\t {% for i in [1, 2] %}\n\t{{ i }}\n\t {% endfor %}\n", "\t1\n\t2\n"},
      {"  {{ 'v' }}", "  v"},                                        // no lstrip before {{
      {"x  {% if true %}y{% endif %}", "x  y"},                      // not at line start
      {"  {%+ if true %}x{% endif %}", "  x"},                      // {%+ keeps the indent
      {"{% if true +%}\nx{% endif %}", "\nx"},                      // +%} keeps the newline
      {"a {# c #} b", "a  b"},
      {"  {# c #}\nb", "b"},
      {"a {#- c -#} b", "ab"},
      {"{{ 'x' }}\n{{ 'y' }}", "x\ny"},                             // no trim after }}
      {"x\n", "x"},
      {"x\n\n", "x\n"},
      {"a\r\nb\rc", "a\nb\nc"},
      {"{% raw %}{{ x }}{% if %}{% endraw %}", "{{ x }}{% if %}"},
      {"{{ {'a': {'b': 1}} }}", "{'a': {'b': 1}}"},
  });
}

TEST(Jinja, Loops) {
  check({
      {"{% for x in [1, 2, 3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}"
       "{{ loop.revindex }}|{% endfor %}",
       "10TrueFalse33|21FalseFalse32|32FalseTrue31|"},
      {"{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}", "2242"},
      {"{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in nothing %}x{% endfor %}", "empty|"},
      {"{% for x in 'ab' %}{{ loop.previtem is defined }}{{ x }}{{ loop.nextitem }}{% endfor %}", "FalseabTrueb"},
      {"{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}", "ba"},
      {"{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}", "37"},
      {"{% for i in range(10) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}"
       "{{ i }}{% endfor %}",
       "02"},
      {"{{ range(3) | list }}{{ range(1, 7, 2) | list }}", "[0, 1, 2][1, 3, 5]"},
  });
}

TEST(Jinja, Scoping) {
  check({
      // A loop iteration starts from the outer value; nothing leaks out of the loop.
      {"{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = 5 %}{{ x }}{% endfor %}{{ x }}", "15151"},
      {"{% if true %}{% set y = 2 %}{% endif %}{{ y }}", "2"},
      {"{% set ns = namespace(n=0, s='') %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
       "6"},
      {"{% set messages = messages[1:] %}{{ messages | length }}", "1", R"({"messages": [1, 2]})"},
      {"{% set a, b = 1, 2 %}{{ b }}{{ a }}", "21"},
      {"{% set s %}a{{ 1 }}b{% endset %}[{{ s }}]", "[a1b]"},
      {"{% with a = 3 %}{{ a }}{% endwith %}[{{ a }}]", "3[]"},
      {"{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} "
       "{{ greet('B', punct='?') }}",
       "Hi A! Hi B?"},
      {"{% filter upper %}ab{{ 'c' }}{% endfilter %}", "ABC"},
      {"{% generation %}{{ 'gen' }}{% endgeneration %}", "gen"},
  });
}

TEST(Jinja, Filters) {
  check({
      {"{{ [3, 1, 2] | sort | join(',') }}|{{ ['b', 'A', 'c'] | sort | list }}|{{ [1, 3] | sort(reverse=true) }}",
       "1,2,3|['A', 'b', 'c']|[3, 1]"},
      {"{{ ['a', 'b'] | first }}{{ ['a', 'b'] | last }}{{ 'abc' | length }}{{ [1, 2] | count }}{{ {'a': 1} | length }}",
       "ab321"},
      {"{{ x | default('d') }}|{{ '' | default('e', true) }}|{{ none | default('n') }}|{{ 0 | d(5) }}", "d|e|None|0"},
      {"{{ ['x', 'code_interpreter', 'y'] | reject('equalto', 'code_interpreter') | join(', ') }}", "x, y"},
      {"{{ items | selectattr('ok') | map(attribute='n') | list }}|"
       "{{ items | rejectattr('n', 'equalto', 'a') | map(attribute='n') | join }}|"
       "{{ items | map(attribute='z', default='-') | join }}",
       "['a']|b|--", R"({"items": [{"n": "a", "ok": true}, {"n": "b", "ok": false}]})"},
      {"{{ [1, 2, 3] | select('odd') | list }}{{ ['a', 'b'] | map('upper') | join }}", "[1, 3]AB"},
      {"{{ 'x' | upper }}{{ 'Ab' | lower }}{{ 3.7 | int }}{{ '42' | int }}{{ 'x' | int }}{{ 2 | float }}", "Xab34202.0"},
      {"{{ [1, 2, 2, 'A', 'a'] | unique | list }}|{{ [3, 1, 2] | max }}{{ [3, 1, 2] | min }}{{ [1, 2] | sum }}",
       "[1, 2, 'A']|313"},
      {"{{ 'a\nb\n\nc' | indent(2) }}|{{ '<a href=\"x\">' | e }}|{{ 2.567 | round(2) }}|{{ [1, 2] | reverse | list }}",
       "a\n  b\n\n  c|&lt;a href=&#34;x&#34;&gt;|2.57|[2, 1]"},
      {"{{ 'a b' | replace(' ', '_') }}|{{ 1 | string }}{{ 'x' | safe }}|{{ 'hi there' | title }}", "a_b|1x|Hi There"},
  });
}

TEST(Jinja, ToJsonMatchesPythonJsonDumps) {
  const char* ctx = R"({"v": {"name": "f", "params": {"b": [1, 2.5, true, null], "a": "é\"\n\t/\u0001\u007f"},
                            "e": {}, "l": []}})";
  check({
      {"{{ v | tojson }}", R"({"name": "f", "params": {"b": [1, 2.5, true, null], "a": "é\"\n\t/\u0001)"
                           "\x7f\"}, \"e\": {}, \"l\": []}",
       ctx},
      {"{{ v | tojson(indent=4) }}",
       "{\n    \"name\": \"f\",\n    \"params\": {\n        \"b\": [\n            1,\n            2.5,\n            true,\n"
       "            null\n        ],\n        \"a\": \"é\\\"\\n\\t/\\u0001\x7f\"\n    },\n    \"e\": {},\n"
       "    \"l\": []\n}",
       ctx},
      {"{{ v.params | tojson(sort_keys=true, separators=(',', ':')) }}", R"({"a":"é\"\n\t/\u0001)" "\x7f\"" R"(,"b":[1,2.5,true,null]})",
       ctx},
      {"{{ 'é😀' | tojson(ensure_ascii=true) }}|{{ none | tojson }}|{{ 'x' | tojson(indent=2) }}",
       R"("\u00e9\ud83d\ude00"|null|"x")"},
      {"{{ [1, [2]] | tojson(indent=2) }}", "[\n  1,\n  [\n    2\n  ]\n]"},
  });
}

TEST(Jinja, UndefinedBehavesLikeJinja2Default) {
  check({
      {"[{{ nope }}]|{{ nope is defined }}{{ nope is undefined }}|{% if nope %}a{% else %}b{% endif %}", "[]|FalseTrue|b"},
      {"{% for x in nope %}x{% endfor %}{{ nope | length }}{{ nope is iterable }}{{ not nope }}", "0TrueTrue"},
      {"{{ nope == nope }}{{ nope == none }}{{ nope | trim }}|{{ nope | default('d') }}", "TrueFalse|d"},
  });
  EXPECT_NE(error_of("{{ nope.attr }}").find("'nope' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ nope['k'] }}").find("'nope' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ nope + 1 }}").find("'nope' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ nope() }}").find("'nope' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ d.missing.x }}", ojson::parse(R"({"d": {}})")).find("'dict object' has no attribute 'missing'"),
            std::string::npos);
  EXPECT_NE(error_of("{{ nope | tojson }}").find("not JSON serializable"), std::string::npos);
}

TEST(Jinja, ErrorsNameTheConstructAndLine) {
  struct Bad {
    const char* source;
    const char* message;
  };
  for (const Bad& b : std::vector<Bad>{
           {"{% import 'x' as y %}", "test.jinja: field 'chat_template': line 1, column 4: unsupported tag '{% import %}'"},
           {"a\n{% call foo() %}{% endcall %}", "line 2, column 4: unsupported tag '{% call %}'"},
           {"{% include 'x' %}", "unsupported tag '{% include %}'"},
           {"{% extends 'x' %}", "unsupported tag '{% extends %}'"},
           {"{% do x %}", "unsupported tag '{% do %}'"},
           {"\n\n  {{ x | frobnicate }}", "line 3, column 10: unsupported filter 'frobnicate'"},
           {"{{ x is frob }}", "line 1, column 9: unsupported test 'frob'"},
           {"{% for x in y recursive %}{% endfor %}", "recursive for loop"},
           {"{{ f(*a) }}", "*args / **kwargs"},
           {"{% if x %}", "a block is not closed (expected '{% elif %}', '{% else %}', '{% endif %}')"},
           {"{% endif %}", "unexpected '{% endif %}'"},
           {"{{ 'abc }}", "string literal is never closed"},
           {"{{ x ", "expression '{{' is never closed"},
           {"{# x", "comment '{#' is never closed"},
           {"{{ x $ y }}", "unexpected character '$'"},
           {"{% break %}", "outside of a for loop"},
           {"{{ 1 + }}", "unexpected '}}' in expression"},
           {"{% set l = [] %}{{ l.append(1) }}", "unsafe"},
           {"{{ 'a' + 1 }}", "line 1, column 8: unsupported operand type(s) for +: 'str' and 'int'"},
           {"{{ 1 // 0 }}", "division by zero"},
           {"{{ 'a' < 1 }}", "'<' not supported"},
           {"{{ '%s' % 1 }}", "printf-style"},
           {"{% for x in 5 %}{% endfor %}", "'int' object is not iterable"},
       }) {
    SCOPED_TRACE(b.source);
    EXPECT_NE(error_of(b.source).find(b.message), std::string::npos) << error_of(b.source);
  }
}

TEST(Jinja, HostileTemplatesFailInsteadOfCrashing) {
  std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_NE(error_of(deep).find("nesting is deeper"), std::string::npos);
  std::string deep_blocks;
  for (int i = 0; i < 1000; ++i) deep_blocks += "{% if true %}";
  EXPECT_NE(error_of(deep_blocks).find("nesting is deeper"), std::string::npos);
  EXPECT_NE(error_of("{{ " + std::string(3000, '-') + "1 }}").find("nesting is deeper"), std::string::npos);
  EXPECT_NE(error_of("{{ " + std::string(3000, '[') + std::string(3000, ']') + " }}").find("nesting is deeper"), std::string::npos);

  RenderLimits small;
  small.max_loop_iterations = 1000;
  small.max_output_bytes = 1 << 16;
  EXPECT_NE(error_of("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", {}, small)
                .find("more than 1000 loop iterations"),
            std::string::npos);
  EXPECT_NE(error_of("{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}", {}, small).find("output is larger"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 'x' * 100000000000 }}").find("too large"), std::string::npos);
  EXPECT_NE(error_of("{{ range(1000000000) }}").find("range() is too big"), std::string::npos);
  EXPECT_NE(error_of("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}").find("nest deeper"), std::string::npos);
  EXPECT_NE(error_of("{{ 9223372036854775807 + 1 }}").find("overflow"), std::string::npos);
}

}  // namespace
}  // namespace flint::jinja
