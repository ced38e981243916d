// mousse-tokenize: FineWeb parquet / JSON Lines / text -> llm.c GPT-2 token shards.
//
//   mousse-tokenize INPUT... --out DIR [--name NAME] [--shard-tokens N] [--threads N] [--split-on S]
//   mousse-tokenize --decode SHARD
//
// Output is byte-identical to llm.c's fineweb.py for the same document order, whatever --threads.
// Every option and every input is checked before the first document is read; exit status 0 on
// success, 1 for a bad input or output, 2 for a bad option, 128 + N when signal N stopped the run.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cctype>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <queue>
#include <system_error>
#include <thread>

#include <CLI/CLI.hpp>

#include "output_dir.h"
#include "readers/input_error.h"
#include "readers/jsonl.h"
#include "readers/reader.h"
#include "shard_writer.h"
#include "tokenizer/gpt2_tokenizer.h"
#include "tokenizer/utf8.h"

using namespace mousse::tok;
using Clock = std::chrono::steady_clock;

namespace {

// Token counts are stored as int32 in the llm.c shard header.
constexpr int64_t kMaxShardTokens = INT32_MAX;
// More encoding threads than this many per hardware thread only cost memory (each keeps up to four
// 1 MB batches in flight).
constexpr int64_t kThreadsPerHardwareThread = 4;

struct Result {
  std::vector<uint16_t> tokens;
  uint64_t docs = 0, text_bytes = 0, replaced = 0;
  std::string error;  // first error in this batch (processing stops there)
};

struct Job {
  DocBatch batch;
  uint64_t first_doc = 1;  // 1-based number of the batch's first document in its file
  Result res;
  bool done = false;
  uint64_t file_bytes_consumed = 0;  // for progress
};

void encode_batch(const Gpt2Tokenizer& tok, const std::string& field, Job& job, EncodeCache& cache, std::vector<uint32_t>& scratch,
                  std::string& text, std::string& clean) {
  DocBatch& b = job.batch;
  Result& r = job.res;
  size_t i = 0;
  try {
    r.tokens.reserve(b.bytes / 3 + b.items.size() + 16);
    for (; i < b.items.size(); ++i) {
      std::string_view doc;
      if (b.kind == DocBatch::Kind::kJsonLine) {
        parse_json_document(b.items[i], field, b.file, b.where[i], text);
        doc = text;
      } else {
        doc = b.items[i];
      }
      size_t rep = 0;
      std::string_view valid = utf8_sanitize(doc, clean, &rep);
      r.replaced += rep;
      r.text_bytes += doc.size();
      scratch.clear();
      scratch.push_back(Gpt2Tokenizer::kEot);
      tok.encode_ordinary_valid(valid, scratch, &cache);
      size_t old = r.tokens.size();
      r.tokens.resize(old + scratch.size());
      uint16_t* dst = r.tokens.data() + old;
      for (size_t k = 0; k < scratch.size(); ++k) dst[k] = uint16_t(scratch[k]);
      ++r.docs;
    }
  } catch (const std::bad_alloc&) {
    std::string where = b.kind == DocBatch::Kind::kJsonLine && i < b.where.size()
                            ? "line " + std::to_string(b.where[i])
                            : "document " + std::to_string(job.first_doc + i);
    r.error = b.file + ": " + where + ": out of memory encoding a document of " +
              std::to_string(i < b.items.size() ? b.items[i].size() : 0) + " bytes";
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  b.items.clear();
  b.items.shrink_to_fit();
}

std::string human_duration(double s) {
  if (s < 0 || s > 1e7) return "?";
  char buf[32];
  int h = int(s / 3600), m = int(s / 60) % 60, sec = int(s) % 60;
  if (h) std::snprintf(buf, sizeof buf, "%dh%02dm", h, m);
  else std::snprintf(buf, sizeof buf, "%dm%02ds", m, sec);
  return buf;
}

// Prints a shard's text. The header is checked against the file size before anything is allocated,
// and the tokens are decoded a slice at a time.
int decode_shard(const std::string& path, const Gpt2Tokenizer& tok) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    std::cerr << "mousse-tokenize: error: cannot open " << path << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  if (!S_ISREG(st.st_mode)) {
    std::cerr << "mousse-tokenize: error: " << path << ": not a regular file\n";
    return 1;
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::cerr << "mousse-tokenize: error: cannot open " << path << "\n";
    return 1;
  }
  int32_t header[256];
  if (!f.read(reinterpret_cast<char*>(header), sizeof header)) {
    std::cerr << "mousse-tokenize: error: " << path << ": shorter than the 1024-byte llm.c header\n";
    return 1;
  }
  if (header[0] != 20240520 || header[1] != 1) {
    std::cerr << "mousse-tokenize: error: " << path << ": not an llm.c GPT-2 shard (magic " << header[0] << ", version "
              << header[1] << ")\n";
    return 1;
  }
  const int64_t ntok = header[2];
  if (ntok < 0 || uint64_t(st.st_size) != 1024 + 2 * uint64_t(ntok)) {
    std::cerr << "mousse-tokenize: error: " << path << ": the header says " << ntok << " tokens, so the file should hold "
              << (ntok < 0 ? std::string("a non-negative count") : std::to_string(1024 + 2 * ntok) + " bytes")
              << ", but it has " << st.st_size << " bytes (truncated or corrupt)\n";
    return 1;
  }
  std::vector<uint16_t> toks;
  for (int64_t done = 0; done < ntok;) {
    size_t n = size_t(std::min<int64_t>(ntok - done, 1 << 20));
    toks.resize(n);
    if (!f.read(reinterpret_cast<char*>(toks.data()), std::streamsize(n * 2))) {
      std::cerr << "mousse-tokenize: error: " << path << ": read error at token " << done << "\n";
      return 1;
    }
    for (size_t k = 0; k < n; ++k)
      if (toks[k] >= Gpt2Tokenizer::kVocabSize) {
        std::cerr << "mousse-tokenize: error: " << path << ": token " << toks[k] << " at position " << done + int64_t(k)
                  << " is outside the GPT-2 vocabulary\n";
        return 1;
      }
    std::string out = tok.decode(toks.data(), n);
    std::fwrite(out.data(), 1, out.size(), stdout);
    done += int64_t(n);
  }
  return 0;
}

// Strict whole-number parsing for the numeric options ("1e8", "12abc" and overflow are rejected).
bool parse_int(const std::string& s, int64_t* v) {
  if (s.empty() || s.size() > 30) return false;
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  *v = x;
  return true;
}

// "--shard-tokens 0: expected a whole number from 1 to 2147483647 (why)"; empty when v is in range.
std::string check_range(const char* opt, const std::string& text, int64_t lo, int64_t hi, const std::string& why,
                        int64_t* v) {
  if (parse_int(text, v) && *v >= lo && *v <= hi) return "";
  return std::string(opt) + " " + text + ": expected a whole number from " + std::to_string(lo) + " to " +
         std::to_string(hi) + (why.empty() ? "" : " (" + why + ")");
}

// First SIGINT/SIGTERM: finish cleanly (remove the shard in progress, exit 128 + signal). A second
// one ends the process at once.
std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) {
  if (g_signal.exchange(sig) != 0) {
    ::signal(sig, SIG_DFL);
    ::raise(sig);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mousse-tokenize: FineWeb parquet / JSON Lines / text -> llm.c GPT-2 token shards"};
  std::vector<std::string> inputs;
  std::string out_dir, name = "fineweb", vocab, decode, split_on, format = "auto", column = "text";
  std::string shard_tokens_arg = "100000000", val_tokens_arg = "0", threads_arg = "0";
  bool quiet = false, drop_sep = false, overwrite = false;
  const int64_t hw_threads = std::max(1u, std::thread::hardware_concurrency());
  const int64_t max_threads = kThreadsPerHardwareThread * hw_threads;
  app.add_option("inputs", inputs, "Input files, globs or directories (.parquet, .jsonl[.gz|.zst], text)");
  app.add_option("--out", out_dir, "Output directory for the shards");
  app.add_option("--name", name, "Shard name prefix: NAME_val_000000.bin, NAME_train_000001.bin, ...")->capture_default_str();
  app.add_option("--shard-tokens", shard_tokens_arg, "Tokens per shard, 1 to 2147483647")
      ->type_name("N")->capture_default_str();
  app.add_option("--val-tokens", val_tokens_arg,
                 "Size of shard 0 (val) in tokens when it differs from --shard-tokens (tinyshakespeare: 32768); "
                 "0: the same as --shard-tokens")->type_name("N")->capture_default_str();
  app.add_option("--threads", threads_arg,
                 "Encoding threads, 0 for one per hardware thread, at most " + std::to_string(kThreadsPerHardwareThread) +
                     " per hardware thread (output is identical for any value)")->type_name("N")->capture_default_str();
  app.add_option("--split-on", split_on,
                 "Text inputs: split into documents on this separator (escapes \\n \\r \\t \\\\ understood); "
                 "each section but the last keeps the separator, like llm.c's tinyshakespeare.py");
  app.add_flag("--drop-separator", drop_sep, "With --split-on: do not keep the separator at the end of sections");
  app.add_option("--format", format, "Input format: auto (from the extension), parquet, jsonl, text")
      ->check(CLI::IsMember({"auto", "parquet", "jsonl", "text"}))->capture_default_str();
  app.add_option("--column", column, "Parquet column / JSON field holding the text")->capture_default_str();
  app.add_option("--vocab", vocab, Gpt2Tokenizer::kVocabOptionHelp);
  app.add_option("--decode", decode, "Print the text of an llm.c shard and exit");
  app.add_flag("--overwrite", overwrite,
               "Replace the NAME_*.bin shards already in --out (without it, existing shards are an error); after a "
               "successful run, shards of NAME that this run did not write are removed");
  app.add_flag("-q,--quiet", quiet, "No progress line");
  app.footer("Exit status: 0 done; 1 a bad input or output (the message names the file and where); 2 a bad "
             "option; 128+N stopped by signal N (SIGINT, SIGTERM), the shard in progress removed.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version end here with 0; every other parse error is a bad option: 2.
    return app.exit(e) == 0 ? 0 : 2;
  }

  auto usage_error = [](const std::string& msg) {
    std::cerr << "mousse-tokenize: error: " << msg << "\n";
    return 2;
  };
  if (!decode.empty()) {
    try {
      Gpt2Tokenizer tok(Gpt2Tokenizer::find_vocab_dir(vocab));
      return decode_shard(decode, tok);
    } catch (const std::exception& e) {
      return usage_error(e.what());
    }
  }

  // Options, all before any work.
  if (inputs.empty() || out_dir.empty()) return usage_error("need INPUT... and --out DIR (or --decode SHARD); see --help");
  int64_t shard_tokens, val_tokens, threads;
  for (const std::string& err :
       {check_range("--shard-tokens", shard_tokens_arg, 1, kMaxShardTokens, "the llm.c shard header stores the count as int32",
                    &shard_tokens),
        check_range("--val-tokens", val_tokens_arg, 0, kMaxShardTokens,
                    "0 for the same size as --shard-tokens; the llm.c shard header stores the count as int32", &val_tokens),
        check_range("--threads", threads_arg, 0, max_threads,
                    "0 for one per hardware thread; this machine has " + std::to_string(hw_threads) +
                        " hardware threads, and more than " + std::to_string(kThreadsPerHardwareThread) +
                        " encoding threads per hardware thread only cost memory",
                    &threads)})
    if (!err.empty()) return usage_error(err);
  if (threads == 0) threads = hw_threads;
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.')
    return usage_error("--name '" + name + "': expected a file name prefix (not empty, no '/', not starting with '.')");
  if (column.empty()) return usage_error("--column: expected the name of a parquet column or JSON field");
  if (drop_sep && split_on.empty()) return usage_error("--drop-separator only applies with --split-on");

  ReaderOptions ropt;
  ropt.column = column;
  if (!split_on.empty()) {
    ropt.split = true;
    std::string sep;
    for (size_t i = 0; i < split_on.size(); ++i) {
      if (split_on[i] == '\\' && i + 1 < split_on.size()) {
        char c = split_on[++i];
        sep += c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
      } else {
        sep += split_on[i];
      }
    }
    ropt.separator = sep;
    ropt.keep_separator = !drop_sep;
  }
  InputFormat fmt = format == "parquet" ? InputFormat::kParquet
                    : format == "jsonl" ? InputFormat::kJsonl
                    : format == "text"  ? InputFormat::kText
                                        : InputFormat::kAuto;

  std::unique_ptr<Gpt2Tokenizer> tok;
  try {
    tok = std::make_unique<Gpt2Tokenizer>(Gpt2Tokenizer::find_vocab_dir(vocab));
  } catch (const std::bad_alloc&) {
    std::cerr << "mousse-tokenize: error: out of memory loading the GPT-2 vocabulary\n";
    return 1;
  } catch (const std::exception& e) {
    return usage_error(e.what());
  }

  // Inputs: every file is opened once up front (a parquet file's footer and column are checked),
  // so a bad file late in the list is found before hours of work. Pipes are left alone: they can
  // be read only once.
  std::vector<std::string> files;
  uint64_t total_file_bytes = 0;
  std::vector<uint64_t> file_sizes;
  try {
    files = expand_inputs(inputs);
    for (auto& f : files) {
      struct stat st;
      bool pipe = stat(f.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
      if (!pipe) open_reader(f, fmt, ropt);
      uint64_t sz = pipe ? 0 : uint64_t(st.st_size);
      file_sizes.push_back(sz);
      total_file_bytes += sz;
    }
  } catch (const std::exception& e) {
    std::cerr << "mousse-tokenize: error: " << e.what() << "\n";
    return 1;
  }

  // Output: the directory, a lock against a second run writing the same shards, and no shard of
  // an earlier run replaced unless --overwrite says so.
  OutputLock lock;
  {
    struct stat st;
    if (stat(out_dir.c_str(), &st) != 0) {
      std::error_code ec;
      std::filesystem::create_directories(out_dir, ec);
      if (ec) {
        std::cerr << "mousse-tokenize: error: cannot create output directory " << out_dir << ": " << ec.message() << "\n";
        return 1;
      }
    } else if (!S_ISDIR(st.st_mode)) {
      std::cerr << "mousse-tokenize: error: --out " << out_dir << " is not a directory\n";
      return 1;
    }
    std::string err = lock.acquire(out_dir, name);
    if (!err.empty()) {
      std::cerr << "mousse-tokenize: error: " << err << "\n";
      return 1;
    }
    if (!lock.warning().empty()) std::cerr << "mousse-tokenize: warning: " << lock.warning() << "\n";
    try {
      std::vector<std::string> old = list_dir(out_dir, is_shard_of, name);
      if (!old.empty() && !overwrite) {
        std::cerr << "mousse-tokenize: error: " << out_dir << " already holds " << old.size() << " shard(s) named " << name
                  << "_*.bin (" << old.front() << (old.size() > 1 ? ", ..." : "")
                  << "); pass --overwrite to replace them, or choose another --out or --name\n";
        return 1;
      }
      // Temporary files of a run that was killed: nobody else writes them while we hold the lock.
      for (const std::string& f : list_dir(out_dir, is_partial_shard_of, name)) ::unlink((out_dir + "/" + f).c_str());
    } catch (const std::exception& e) {
      std::cerr << "mousse-tokenize: error: " << e.what() << "\n";
      return 1;
    }
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A closed stderr pipe (`... 2>&1 | head`) must not kill the run halfway through a shard.
  ::signal(SIGPIPE, SIG_IGN);

  const size_t kBatchBytes = 1 << 20;
  const size_t max_inflight = threads == 1 ? 1 : size_t(4 * threads);

  std::unique_ptr<ShardWriter> writer;
  // Shared state for the worker pool.
  std::mutex mu;
  std::condition_variable cv_work, cv_done;
  std::queue<Job*> todo;
  bool stop = false;
  std::vector<std::thread> pool;
  EncodeCache main_cache;
  std::vector<uint32_t> main_scratch;
  std::string main_text, main_clean;

  auto t0 = Clock::now();
  auto last_report = t0;
  const bool tty = isatty(2);
  uint64_t docs = 0, text_bytes = 0, replaced = 0, skipped = 0, file_bytes_done = 0;
  std::string error;

  auto report = [&](bool final_line) {
    double el = std::chrono::duration<double>(Clock::now() - t0).count();
    double mbs = el > 0 ? text_bytes / 1e6 / el : 0, tps = el > 0 ? writer->tokens_written() / el : 0;
    double frac = total_file_bytes ? double(file_bytes_done) / double(total_file_bytes) : 0;
    double eta = frac > 0 ? el * (1 - frac) / frac : -1;
    char line[256];
    std::snprintf(line, sizeof line, "%s%llu docs | %.1f MB | %.2f MB/s | %.2fM tok/s | %llu tokens | %.0f%% | ETA %s",
                  tty ? "\r" : "", (unsigned long long)docs, text_bytes / 1e6, mbs, tps / 1e6,
                  (unsigned long long)writer->tokens_written(), frac * 100, final_line ? "0m00s" : human_duration(eta).c_str());
    std::fputs(line, stderr);
    if (!tty || final_line) std::fputc('\n', stderr);
    std::fflush(stderr);
  };

  std::deque<std::unique_ptr<Job>> inflight;
  size_t file_idx = 0;
  std::unique_ptr<DocReader> reader;
  uint64_t bytes_before_file = 0, docs_in_file = 0;
  bool input_done = false;

  auto consume = [&](Job& job) {
    if (!job.res.error.empty()) {
      error = job.res.error;
      return false;
    }
    writer->write(job.res.tokens.data(), job.res.tokens.size());
    docs += job.res.docs;
    text_bytes += job.res.text_bytes;
    replaced += job.res.replaced;
    file_bytes_done = job.file_bytes_consumed;
    return true;
  };

  try {
    writer = std::make_unique<ShardWriter>(out_dir, name, uint64_t(shard_tokens), uint64_t(val_tokens));
    if (threads > 1) {
      for (int64_t t = 0; t < threads; ++t)
        pool.emplace_back([&] {
          EncodeCache cache;
          std::vector<uint32_t> scratch;
          std::string text, clean;
          while (true) {
            Job* job;
            {
              std::unique_lock<std::mutex> lk(mu);
              cv_work.wait(lk, [&] { return stop || !todo.empty(); });
              if (todo.empty()) return;
              job = todo.front();
              todo.pop();
            }
            encode_batch(*tok, ropt.column, *job, cache, scratch, text, clean);
            {
              std::lock_guard<std::mutex> lk(mu);
              job->done = true;
            }
            cv_done.notify_all();
          }
        });
    }
    while (true) {
      // Fill the pipeline.
      while (!input_done && inflight.size() < max_inflight) {
        auto job = std::make_unique<Job>();
        try {
          bool got = false;
          while (!got) {
            if (!reader) {
              if (file_idx >= files.size()) {
                input_done = true;
                break;
              }
              reader = open_reader(files[file_idx], fmt, ropt);
              docs_in_file = 0;
            }
            got = reader->read(job->batch, kBatchBytes);
            job->file_bytes_consumed = bytes_before_file + reader->consumed();
            if (!got) {
              skipped += reader->skipped();
              bytes_before_file += file_sizes[file_idx];
              reader.reset();
              ++file_idx;
            }
          }
          if (!got) break;
          job->first_doc = docs_in_file + 1;
          docs_in_file += job->batch.items.size();
        } catch (const std::exception& e) {
          job->res.error = e.what();
          job->done = true;
          input_done = true;
          inflight.push_back(std::move(job));
          break;
        }
        Job* raw = job.get();
        inflight.push_back(std::move(job));
        if (threads == 1) {
          encode_batch(*tok, ropt.column, *raw, main_cache, main_scratch, main_text, main_clean);
          raw->done = true;
        } else {
          {
            std::lock_guard<std::mutex> lk(mu);
            todo.push(raw);
          }
          cv_work.notify_one();
        }
      }
      if (inflight.empty()) break;
      Job& front = *inflight.front();
      {
        std::unique_lock<std::mutex> lk(mu);
        cv_done.wait(lk, [&] { return front.done; });
      }
      bool ok = consume(front);
      inflight.pop_front();
      if (!ok) break;
      if (int sig = g_signal.load()) {
        error = std::string("stopped by ") + (sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal");
        break;
      }
      if (!quiet) {
        auto now = Clock::now();
        if (now - last_report > std::chrono::milliseconds(tty ? 500 : 10000)) {
          report(false);
          last_report = now;
        }
      }
    }
  } catch (const std::bad_alloc&) {
    error = "out of memory while tokenizing " + (file_idx < files.size() ? files[file_idx] : out_dir);
  } catch (const std::system_error& e) {
    error = e.what();
    if (pool.size() < size_t(threads > 1 ? threads : 0))  // thread creation itself failed
      error = "cannot start " + std::to_string(threads) + " encoding threads (" + error + "); pass fewer with --threads";
  } catch (const std::exception& e) {
    error = e.what();
  }
  {
    std::lock_guard<std::mutex> lk(mu);
    stop = true;
    while (!todo.empty()) todo.pop();
  }
  cv_work.notify_all();
  for (auto& t : pool) t.join();

  const int sig = g_signal.load();
  if (!error.empty()) {
    size_t written = 0;
    if (writer) {
      writer->abort();
      written = writer->shards().size();
      if (!quiet && docs) report(false);
    }
    std::cerr << "mousse-tokenize: " << (sig ? "" : "error: ") << error << "\n";
    std::cerr << "mousse-tokenize: " << written
              << " complete shard(s) were written before it stopped; the shard in progress was removed\n";
    return sig ? 128 + sig : 1;
  }
  try {
    writer->finish();
  } catch (const std::exception& e) {
    writer->abort();
    std::cerr << "mousse-tokenize: error: " << e.what() << "\n";
    return 1;
  }
  double el = std::chrono::duration<double>(Clock::now() - t0).count();
  file_bytes_done = total_file_bytes;
  if (!quiet) report(true);
  std::fprintf(stderr,
               "mousse-tokenize: %zu file(s), %llu documents, %.1f MB of text, %llu tokens in %zu shard(s) -> %s "
               "in %.2f s (%.2f MB/s, %.2fM tok/s, %lld thread(s))",
               files.size(), (unsigned long long)docs, text_bytes / 1e6, (unsigned long long)writer->tokens_written(),
               writer->shards().size(), out_dir.c_str(), el, el > 0 ? text_bytes / 1e6 / el : 0,
               el > 0 ? writer->tokens_written() / 1e6 / el : 0, (long long)threads);
  if (skipped) std::fprintf(stderr, "; %llu null documents skipped", (unsigned long long)skipped);
  if (replaced) std::fprintf(stderr, "; %llu invalid UTF-8 sequences replaced by U+FFFD", (unsigned long long)replaced);
  std::fputc('\n', stderr);
  if (docs == 0) std::fprintf(stderr, "mousse-tokenize: warning: the input holds no documents; no shard was written\n");
  // --overwrite: shards of an earlier, longer run would silently extend this one when a glob picks
  // them up, so they go.
  if (overwrite) {
    size_t removed = 0;
    try {
      for (const std::string& f : list_dir(out_dir, is_shard_of, name)) {
        std::string full = out_dir + "/" + f;
        bool ours = false;
        for (auto& w : writer->shards()) ours |= (w == full);
        if (!ours && ::unlink(full.c_str()) == 0) ++removed;
      }
    } catch (const std::exception& e) {
      std::cerr << "mousse-tokenize: error: " << e.what() << "\n";
      return 1;
    }
    if (removed)
      std::fprintf(stderr, "mousse-tokenize: --overwrite: removed %zu %s_*.bin shard(s) of an earlier run\n", removed,
                   name.c_str());
  }
  return 0;
}
