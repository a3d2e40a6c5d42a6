// fs::read_file and its checks: every reader of a user's file goes through it, so what it refuses
// (directories, FIFOs, devices, files over the caller's limit, links out of a folder) no reader reads.
#include "gqe/core/fs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "gqe/core/error.h"
#include "test_util.h"

namespace gqe {
namespace {

using test::error_of;

void write(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
}

TEST(Fs, ReadFileReadsRegularFilesWithinTheLimit) {
  const std::string dir = test::scratch_dir("fs-read");
  write(dir + "/a.txt", std::string("x\0y", 3));
  EXPECT_EQ(fs::read_file(dir + "/a.txt"), std::string("x\0y", 3));
  EXPECT_EQ(fs::read_file(dir + "/a.txt", 3), std::string("x\0y", 3));
  ::symlink("a.txt", (dir + "/link.txt").c_str());
  EXPECT_EQ(fs::read_file(dir + "/link.txt"), std::string("x\0y", 3));  // a link to a regular file is fine
  // /proc files report size 0: read to EOF all the same.
  EXPECT_NE(fs::read_file("/proc/self/status").find("Name:"), std::string::npos);
}

TEST(Fs, ReadFileRefusesDirectoriesFifosDevicesAndOversizedFiles) {
  const std::string dir = test::scratch_dir("fs-refuse");
  std::string m = error_of([&] { fs::read_file(dir); });
  EXPECT_EQ(m, dir + ": not a regular file (a directory)");
  ASSERT_EQ(::mkfifo((dir + "/fifo").c_str(), 0644), 0);
  // No writer ever opens the FIFO: a reader that opened it blocking would hang here.
  const auto t0 = std::chrono::steady_clock::now();
  m = error_of([&] { fs::read_file(dir + "/fifo"); });
  EXPECT_EQ(m, dir + "/fifo: not a regular file (a FIFO)");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  m = error_of([&] { fs::read_file("/dev/zero"); });
  EXPECT_EQ(m, "/dev/zero: not a regular file (a character device)");
  write(dir + "/big", std::string(100, 'x'));
  m = error_of([&] { fs::read_file(dir + "/big", 99); });
  EXPECT_EQ(m, dir + "/big: too large: 100 bytes (at most 99 expected)");
  m = error_of([&] { fs::read_file(dir + "/missing"); });
  EXPECT_EQ(m, dir + "/missing: cannot open: No such file or directory");
  EXPECT_EQ(fs::check_regular_file(dir + "/big"), 100u);
  EXPECT_EQ(error_of([&] { fs::check_regular_file(dir + "/fifo"); }), dir + "/fifo: not a regular file (a FIFO)");
}

TEST(Fs, RegularFileInsideRefusesLinksOutOfTheFolder) {
  const std::string root = test::scratch_dir("fs-inside");
  const std::string dir = root + "/model", outside = root + "/model-secret";
  fs::mkdirs(dir);
  fs::mkdirs(outside);
  write(dir + "/tokenizer.json", "{}");
  write(outside + "/key", "secret");
  EXPECT_EQ(fs::regular_file_inside(dir, "tokenizer.json"), fs::regular_file_inside(dir, "./tokenizer.json"));
  // A link to another file of the folder is fine; one out of it (even to a sibling whose name starts
  // with the folder's) is not, nor is a directory or a path that climbs out.
  ::symlink("tokenizer.json", (dir + "/alias.json").c_str());
  EXPECT_NO_THROW(fs::regular_file_inside(dir, "alias.json"));
  ::symlink((outside + "/key").c_str(), (dir + "/tokenizer.model").c_str());
  std::string m = error_of([&] { fs::regular_file_inside(dir, "tokenizer.model"); });
  EXPECT_NE(m.find(dir + "/tokenizer.model: leads outside the folder " + dir), std::string::npos) << m;
  m = error_of([&] { fs::regular_file_inside(dir, "../model-secret/key"); });
  EXPECT_NE(m.find("leads outside the folder"), std::string::npos) << m;
  ::symlink("/dev/zero", (dir + "/zero").c_str());
  m = error_of([&] { fs::regular_file_inside(dir, "zero"); });
  EXPECT_NE(m.find("leads outside the folder"), std::string::npos) << m;
  fs::mkdirs(dir + "/sub");
  m = error_of([&] { fs::regular_file_inside(dir, "sub"); });
  EXPECT_NE(m.find("not a regular file (a directory)"), std::string::npos) << m;
}

}  // namespace
}  // namespace gqe
