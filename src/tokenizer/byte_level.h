// tokenizer/byte_level.h — GPT-2's byte <-> unicode mapping used by byte-level
// BPE vocabularies (tokenizer.json of Llama 3).
//
// Contract: every byte 0..255 maps to one printable code point (the bytes that
// are printable Latin-1 map to themselves, the others to U+0100 upwards, in
// GPT-2's order); byte_level_to_bytes() inverts it for a whole vocab string.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace flint {

// The UTF-8 text of the code point that stands for `byte`.
const std::string& byte_level_char(unsigned char byte);

// The raw bytes a byte-level vocab string stands for, or nullopt when it holds
// a character outside the mapping (or is not valid UTF-8).
std::optional<std::string> byte_level_to_bytes(std::string_view text);

// Raw bytes -> byte-level string (for printing token pieces).
std::string bytes_to_byte_level(std::string_view bytes);

}  // namespace flint
