// Formatting numbers and lists for people (progress lines, model summaries, error messages).
#pragma once
#include <string>
#include <vector>

namespace gqe {

// A count with an SI suffix: 950 -> "950", 12345 -> "12.3k", 4.5e6 -> "4.50M", 7.1e9 -> "7.10G".
std::string human_number(double x);
// Fixed-point with `decimals` digits after the point: 1.23456 -> "1.23".
std::string fixed_point(double x, int decimals = 2);
// The items as a sentence lists them: {a} -> "a", {a, b} -> "a or b", {a, b, c} -> "a, b or c".
std::string or_list(const std::vector<std::string>& items);

}  // namespace gqe
