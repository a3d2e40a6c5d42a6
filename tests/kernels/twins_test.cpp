// The list of fast kernels and their reference twins (kernels/twins.h) against the source tree it describes:
// the files it names exist and declare and call what it says, no kernel header is missing from it, and
// docs/kernels.md shows exactly its rows. Reads files only, so the CUDA rows are checked in every build.
#include "gqe/kernels/twins.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "gqe/core/fs.h"
#include "test_util.h"

namespace gqe {
namespace {

using kernels::KernelDevice;
using kernels::KernelTwin;

// The source root: CTest sets GQE_SOURCE_DIR; the sanitizer and portable scripts run from the root.
using test::source_dir;

std::string read_source(const std::string& relative) { return fs::read_file(source_dir() + "/" + relative); }

// "kernels::cuda::rope" -> "rope"
std::string unqualified(const std::string& name) {
  const size_t colon = name.rfind("::");
  return colon == std::string::npos ? name : name.substr(colon + 2);
}

// "a, b" -> {"a", "b"}
std::vector<std::string> names_in(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = list.find(", ", start);
    out.push_back(list.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 2;
  }
  return out;
}

// Whether `text` has a call or declaration of the function `name`: the name as a whole word before '('.
bool mentions_call(const std::string& text, const std::string& name) {
  const std::string call = unqualified(name) + "(";
  for (size_t at = text.find(call); at != std::string::npos; at = text.find(call, at + 1)) {
    const char before = at == 0 ? ' ' : text[at - 1];
    if (!(std::isalnum(static_cast<unsigned char>(before)) || before == '_')) return true;
  }
  return false;
}

const char* device_name(KernelDevice d) { return d == KernelDevice::cpu ? "CPU" : "CUDA"; }

TEST(KernelTwins, EveryRowNamesFilesThatDeclareAndCompareItsKernelAndTwin) {
  for (const KernelTwin& t : kernels::kKernelTwins) {
    SCOPED_TRACE(t.kernel);
    for (const char* file : {t.header, t.reference_header, t.test})
      ASSERT_TRUE(fs::is_file(source_dir() + "/" + file)) << file << " is not in the source tree at " << source_dir();
    const std::string header = read_source(t.header), reference_header = read_source(t.reference_header),
                      test = read_source(t.test);
    EXPECT_TRUE(mentions_call(header, t.kernel)) << t.header << " declares no " << t.kernel;
    EXPECT_TRUE(mentions_call(test, t.kernel)) << t.test << " never calls " << t.kernel;
    for (const std::string& twin : names_in(t.reference)) {
      EXPECT_TRUE(mentions_call(reference_header, twin)) << t.reference_header << " declares no " << twin;
      EXPECT_TRUE(mentions_call(test, twin)) << t.test << " never calls " << twin;
    }
    // The CUDA kernels and their tests live in cuda/ folders (built only with CUDA); the CPU ones do not.
    const bool in_cuda_folder = std::string(t.header).find("/cuda/") != std::string::npos;
    EXPECT_EQ(in_cuda_folder, t.device == KernelDevice::cuda) << t.header;
    EXPECT_EQ(std::string(t.test).find("/cuda/") != std::string::npos, t.device == KernelDevice::cuda) << t.test;
  }
}

TEST(KernelTwins, EveryHeaderUnderKernelsIsListed) {
  std::set<std::string> kernel_headers, support(std::begin(kernels::kKernelSupportHeaders),
                                                std::end(kernels::kKernelSupportHeaders));
  for (const KernelTwin& t : kernels::kKernelTwins) kernel_headers.insert(t.header);
  for (const std::string& h : support) EXPECT_FALSE(kernel_headers.count(h)) << h << " is listed twice";
  std::set<std::string> found;
  const std::filesystem::path root = std::filesystem::path(source_dir()) / "src/gqe/kernels";
  ASSERT_TRUE(std::filesystem::is_directory(root)) << root;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".h") continue;
    const std::string relative = "src/gqe/kernels/" + entry.path().lexically_relative(root).generic_string();
    found.insert(relative);
    EXPECT_TRUE(kernel_headers.count(relative) || support.count(relative))
        << relative << " is in neither kKernelTwins nor kKernelSupportHeaders (kernels/twins.h)";
  }
  for (const std::string& h : support) EXPECT_TRUE(found.count(h)) << h << " (kKernelSupportHeaders) does not exist";
}

TEST(KernelTwins, DocsTableShowsExactlyTheRows) {
  std::vector<std::string> want;
  for (const KernelTwin& t : kernels::kKernelTwins)
    want.push_back(std::string("| `") + t.kernel + "` | `" + t.header + "` | `" + t.reference + "` | `" +
                   t.reference_header + "` | `" + t.test + "` | " + device_name(t.device) + " |");
  const std::string doc = read_source("docs/kernels.md");
  const std::string head = "| fast kernel | declared in | reference twin | declared in | compared by | device |\n";
  const size_t at = doc.find(head);
  ASSERT_NE(at, std::string::npos) << "docs/kernels.md has no table headed " << head;
  std::vector<std::string> got;
  size_t line = doc.find('\n', at + head.size()) + 1;  // past the |---| line
  while (line < doc.size() && doc[line] == '|') {
    const size_t end = doc.find('\n', line);
    got.push_back(doc.substr(line, end - line));
    line = end == std::string::npos ? doc.size() : end + 1;
  }
  EXPECT_EQ(got, want) << "docs/kernels.md's twin table differs from kKernelTwins (src/gqe/kernels/twins.h)";
}

}  // namespace
}  // namespace gqe
