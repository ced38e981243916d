// A deterministic stand-in for libFuzzer's main(), for compilers without libFuzzer (g++): it runs
// every seed input, then mutants of them drawn from a fixed seed (bit flips, byte changes, inserted
// and deleted ranges, interesting integers written over the bytes, copies within an input, splices
// of two inputs, dictionary tokens), until a time or run budget is spent. It has no coverage
// feedback, so it finds less than libFuzzer, but it runs under any compiler and gives the same
// sequence of inputs on every run.
//
// It takes the command line the fuzz tests give libFuzzer: directories or files of seed inputs and
//   -max_total_time=S  -runs=N  -seed=K  -max_len=L  -timeout=T  -artifact_prefix=P  -dict=FILE
// (other -flags are ignored). An input that crashes, trips a sanitizer or runs past -timeout is
// written to P + "crash-<hash>" (or "timeout-<hash>") before the process dies, as libFuzzer does.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace {

using Bytes = std::vector<uint8_t>;

// The input being run, for the crash handlers (which may only use async-signal-safe calls).
const uint8_t* g_input = nullptr;
size_t g_input_size = 0;
char g_prefix[2048] = "./";
volatile sig_atomic_t g_dumped = 0;

void dump_input(const char* kind) {
  if (g_dumped) return;
  g_dumped = 1;
  // FNV-1a of the input names the file.
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < g_input_size; ++i) h = (h ^ g_input[i]) * 1099511628211ull;
  char path[2200];
  size_t n = 0;
  for (const char* s = g_prefix; *s && n < 2048; ++s) path[n++] = *s;
  for (const char* s = kind; *s; ++s) path[n++] = *s;
  path[n++] = '-';
  for (int i = 15; i >= 0; --i) path[n++] = "0123456789abcdef"[(h >> (4 * i)) & 15];
  path[n] = 0;
  int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    for (size_t done = 0; done < g_input_size;) {
      ssize_t w = ::write(fd, g_input + done, g_input_size - done);
      if (w <= 0) break;
      done += size_t(w);
    }
    ::close(fd);
  }
  const char msg[] = "\nfuzz driver: the failing input was written to ";
  (void)!::write(2, msg, sizeof msg - 1);
  (void)!::write(2, path, n);
  (void)!::write(2, "\n", 1);
}

extern "C" void on_crash_signal(int sig) {
  dump_input("crash");
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

extern "C" void on_timeout(int) {
  const char msg[] = "\nfuzz driver: an input ran past -timeout\n";
  (void)!::write(2, msg, sizeof msg - 1);
  dump_input("timeout");
  ::_exit(70);
}

extern "C" void on_sanitizer_death() { dump_input("crash"); }

// libFuzzer's dictionary format: one token per line, `name="value"` or `"value"`, with \\, \" and
// \xNN escapes; '#' starts a comment.
std::vector<Bytes> read_dict(const std::string& path) {
  std::vector<Bytes> out;
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "fuzz driver: cannot read dictionary %s\n", path.c_str());
    std::exit(1);
  }
  std::string line;
  while (std::getline(in, line)) {
    size_t q = line.find('"');
    if (line.empty() || line[0] == '#' || q == std::string::npos) continue;
    Bytes tok;
    for (size_t i = q + 1; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) {
        char c = line[++i];
        if (c == 'x' && i + 2 < line.size()) {
          tok.push_back(uint8_t(std::stoi(line.substr(i + 1, 2), nullptr, 16)));
          i += 2;
        } else {
          tok.push_back(uint8_t(c));
        }
      } else {
        tok.push_back(uint8_t(line[i]));
      }
    }
    if (!tok.empty()) out.push_back(tok);
  }
  return out;
}

void add_seed(const std::filesystem::path& p, size_t max_len, std::vector<Bytes>& seeds) {
  std::ifstream in(p, std::ios::binary);
  Bytes b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (b.size() > max_len) b.resize(max_len);
  seeds.push_back(std::move(b));
}

class Mutator {
 public:
  Mutator(uint64_t seed, size_t max_len, const std::vector<Bytes>& seeds, const std::vector<Bytes>& dict)
      : rng_(seed), max_len_(max_len), seeds_(seeds), dict_(dict) {}

  Bytes next() {
    Bytes b = seeds_.empty() ? Bytes() : seeds_[pick(seeds_.size())];
    int rounds = 1;
    while (rounds < 8 && pick(2)) ++rounds;  // 1, 2, 3... mutations stacked, each half as likely
    for (int r = 0; r < rounds; ++r) mutate(b);
    if (b.size() > max_len_) b.resize(max_len_);
    return b;
  }

 private:
  size_t pick(size_t n) { return n ? size_t(rng_() % n) : 0; }
  void mutate(Bytes& b) {
    switch (pick(10)) {
      case 0:  // flip one bit
        if (!b.empty()) b[pick(b.size())] ^= uint8_t(1u << pick(8));
        break;
      case 1:  // set one byte
        if (!b.empty()) b[pick(b.size())] = uint8_t(rng_());
        break;
      case 2:  // add or subtract a little
        if (!b.empty()) b[pick(b.size())] += uint8_t(int(pick(35)) - 17);
        break;
      case 3: {  // insert random bytes
        size_t at = pick(b.size() + 1), n = 1 + pick(16);
        Bytes ins(n);
        for (auto& x : ins) x = uint8_t(rng_());
        b.insert(b.begin() + long(at), ins.begin(), ins.end());
        break;
      }
      case 4: {  // delete a range
        if (b.empty()) break;
        size_t at = pick(b.size()), n = 1 + pick(std::min<size_t>(b.size() - at, 64));
        b.erase(b.begin() + long(at), b.begin() + long(at + n));
        break;
      }
      case 5: {  // an interesting integer over 1, 2, 4 or 8 bytes, either byte order
        static const uint64_t kValues[] = {0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 100, 127, 128, 255, 256,
                                           1000, 1023, 1024, 4096, 32767, 32768, 65535, 65536, 100000,
                                           0x7FFFFFFFull, 0x80000000ull, 0xFFFFFFFFull, 0x100000000ull,
                                           0x7FFFFFFFFFFFFFFFull, 0x8000000000000000ull, ~0ull, ~0ull - 1};
        uint64_t v = kValues[pick(std::size(kValues))];
        size_t w = size_t(1) << pick(4);
        if (b.size() < w) break;
        size_t at = pick(b.size() - w + 1);
        bool big = pick(2);
        for (size_t i = 0; i < w; ++i) b[at + i] = uint8_t(v >> (8 * (big ? w - 1 - i : i)));
        break;
      }
      case 6: {  // copy a range elsewhere in the input
        if (b.size() < 2) break;
        size_t from = pick(b.size()), n = 1 + pick(std::min<size_t>(b.size() - from, 128)), to = pick(b.size() + 1);
        Bytes chunk(b.begin() + long(from), b.begin() + long(from + n));
        b.insert(b.begin() + long(to), chunk.begin(), chunk.end());
        break;
      }
      case 7: {  // splice: this input's head, another input's tail
        if (seeds_.empty()) break;
        const Bytes& o = seeds_[pick(seeds_.size())];
        size_t cut = pick(b.size() + 1), from = pick(o.size() + 1);
        b.resize(cut);
        b.insert(b.end(), o.begin() + long(from), o.end());
        break;
      }
      case 8: {  // a dictionary token, inserted or written over
        if (dict_.empty()) break;
        const Bytes& t = dict_[pick(dict_.size())];
        size_t at = pick(b.size() + 1);
        if (pick(2) || at + t.size() > b.size()) b.insert(b.begin() + long(at), t.begin(), t.end());
        else std::copy(t.begin(), t.end(), b.begin() + long(at));
        break;
      }
      case 9:  // truncate
        if (!b.empty()) b.resize(pick(b.size()));
        break;
    }
  }

  std::mt19937_64 rng_;
  size_t max_len_;
  const std::vector<Bytes>& seeds_;
  const std::vector<Bytes>& dict_;
};

void run_one(const Bytes& b, unsigned timeout) {
  g_input = b.data();
  g_input_size = b.size();
  if (timeout) ::alarm(timeout);
  LLVMFuzzerTestOneInput(b.data(), b.size());
  if (timeout) ::alarm(0);
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  double max_time = 10;
  uint64_t runs = 0, seed = 1;
  size_t max_len = 4096;
  unsigned timeout = 0;
  std::vector<Bytes> seeds, dict;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* flag) -> const char* {
      size_t n = std::strlen(flag);
      return a.compare(0, n, flag) == 0 ? a.c_str() + n : nullptr;
    };
    if (const char* v = val("-max_total_time=")) max_time = std::atof(v);
    else if (const char* v = val("-runs=")) runs = std::strtoull(v, nullptr, 10);
    else if (const char* v = val("-seed=")) seed = std::strtoull(v, nullptr, 10);
    else if (const char* v = val("-max_len=")) max_len = std::strtoull(v, nullptr, 10);
    else if (const char* v = val("-timeout=")) timeout = unsigned(std::atoi(v));
    else if (const char* v = val("-artifact_prefix=")) std::snprintf(g_prefix, sizeof g_prefix, "%s", v);
    else if (const char* v = val("-dict=")) dict = read_dict(v);
    else if (a[0] != '-') inputs.push_back(a);
  }
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (std::filesystem::is_directory(in, ec)) {
      std::vector<std::filesystem::path> files;
      for (auto& e : std::filesystem::recursive_directory_iterator(in, ec))
        if (e.is_regular_file()) files.push_back(e.path());
      std::sort(files.begin(), files.end());  // the same order on every machine
      for (auto& f : files) add_seed(f, max_len, seeds);
    } else if (std::filesystem::exists(in, ec)) {
      add_seed(in, max_len, seeds);
    }
  }

  struct sigaction sa {};
  sa.sa_handler = on_crash_signal;
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGTRAP}) sigaction(sig, &sa, nullptr);
  sa.sa_handler = on_timeout;
  sigaction(SIGALRM, &sa, nullptr);
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(on_sanitizer_death);

  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  for (const Bytes& b : seeds) run_one(b, timeout);
  std::fprintf(stderr, "fuzz driver: %zu seed input(s) passed in %.1f s\n", seeds.size(), elapsed());
  Mutator mutator(seed, max_len, seeds, dict);
  uint64_t n = 0;
  while (runs ? n < runs : elapsed() < max_time) {
    Bytes b = mutator.next();
    run_one(b, timeout);
    ++n;
  }
  std::fprintf(stderr, "fuzz driver: %llu mutated input(s) in %.1f s (seed %llu), no failure\n", (unsigned long long)n,
               elapsed(), (unsigned long long)seed);
  return 0;
}
