#include "gqe/core/format.h"

#include <cstdio>

namespace gqe {

std::string human_number(double x) {
  char b[32];
  if (x >= 1e9) std::snprintf(b, sizeof b, "%.2fG", x / 1e9);
  else if (x >= 1e6) std::snprintf(b, sizeof b, "%.2fM", x / 1e6);
  else if (x >= 1e3) std::snprintf(b, sizeof b, "%.1fk", x / 1e3);
  else std::snprintf(b, sizeof b, "%.0f", x);
  return b;
}

std::string fixed_point(double x, int decimals) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, x);
  return b;
}

std::string or_list(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i)
    out += (i == 0 ? "" : i + 1 == items.size() ? " or " : ", ") + items[i];
  return out;
}

}  // namespace gqe
