// mousse-tokenize: FineWeb parquet / JSON Lines / text -> llm.c GPT-2 token shards.
//
//   mousse-tokenize INPUT... --out DIR [--name NAME] [--shard-tokens N] [--threads N] [--split-on S]
//   mousse-tokenize --decode SHARD
//
// Output is byte-identical to llm.c's fineweb.py for the same document order, whatever --threads.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <queue>
#include <thread>

#include <CLI/CLI.hpp>

#include "readers/input_error.h"
#include "readers/jsonl.h"
#include "readers/reader.h"
#include "shard_writer.h"
#include "tokenizer/gpt2_tokenizer.h"
#include "tokenizer/utf8.h"

using namespace mousse::tok;
using Clock = std::chrono::steady_clock;

namespace {

struct Result {
  std::vector<uint16_t> tokens;
  uint64_t docs = 0, text_bytes = 0, replaced = 0;
  std::string error;  // first error in this batch (processing stops there)
};

struct Job {
  DocBatch batch;
  Result res;
  bool done = false;
  uint64_t file_bytes_consumed = 0;  // for progress
};

void encode_batch(const Gpt2Tokenizer& tok, const std::string& field, Job& job, EncodeCache& cache, std::vector<uint32_t>& scratch,
                  std::string& text, std::string& clean) {
  DocBatch& b = job.batch;
  Result& r = job.res;
  r.tokens.reserve(b.bytes / 3 + b.items.size() + 16);
  try {
    for (size_t i = 0; i < b.items.size(); ++i) {
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

int decode_shard(const std::string& path, const Gpt2Tokenizer& tok) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::cerr << "mousse-tokenize: cannot open " << path << "\n";
    return 1;
  }
  int32_t header[256];
  if (!f.read(reinterpret_cast<char*>(header), sizeof header)) {
    std::cerr << "mousse-tokenize: " << path << ": shorter than the 1024-byte llm.c header\n";
    return 1;
  }
  if (header[0] != 20240520 || header[1] != 1) {
    std::cerr << "mousse-tokenize: " << path << ": not an llm.c GPT-2 shard (magic " << header[0] << ", version "
              << header[1] << ")\n";
    return 1;
  }
  std::vector<uint16_t> toks(size_t(std::max(header[2], 0)));
  if (!f.read(reinterpret_cast<char*>(toks.data()), std::streamsize(toks.size() * 2))) {
    std::cerr << "mousse-tokenize: " << path << ": truncated (header says " << header[2] << " tokens)\n";
    return 1;
  }
  for (uint16_t t : toks)
    if (t >= Gpt2Tokenizer::kVocabSize) {
      std::cerr << "mousse-tokenize: " << path << ": token " << t << " outside the GPT-2 vocabulary\n";
      return 1;
    }
  std::string out = tok.decode(toks.data(), toks.size());
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mousse-tokenize: FineWeb parquet / JSON Lines / text -> llm.c GPT-2 token shards"};
  std::vector<std::string> inputs;
  std::string out_dir, name = "fineweb", vocab, decode, split_on, format = "auto", column = "text";
  uint64_t shard_tokens = 100000000, val_tokens = 0;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  bool quiet = false, drop_sep = false;
  app.add_option("inputs", inputs, "Input files, globs or directories (.parquet, .jsonl[.gz|.zst], text)");
  app.add_option("--out", out_dir, "Output directory for the shards");
  app.add_option("--name", name, "Shard name prefix: NAME_val_000000.bin, NAME_train_000001.bin, ...")->capture_default_str();
  app.add_option("--shard-tokens", shard_tokens, "Tokens per shard")->capture_default_str();
  app.add_option("--val-tokens", val_tokens,
                 "Size of shard 0 (val) in tokens when it differs from --shard-tokens (tinyshakespeare: 32768)");
  app.add_option("--threads", threads, "Encoding threads (output is identical for any value)")->capture_default_str();
  app.add_option("--split-on", split_on,
                 "Text inputs: split into documents on this separator (escapes \\n \\r \\t \\\\ understood); "
                 "each section but the last keeps the separator, like llm.c's tinyshakespeare.py");
  app.add_flag("--drop-separator", drop_sep, "With --split-on: do not keep the separator at the end of sections");
  app.add_option("--format", format, "Input format: auto (from the extension), parquet, jsonl, text")
      ->check(CLI::IsMember({"auto", "parquet", "jsonl", "text"}))->capture_default_str();
  app.add_option("--column", column, "Parquet column / JSON field holding the text")->capture_default_str();
  app.add_option("--vocab", vocab, Gpt2Tokenizer::kVocabOptionHelp);
  app.add_option("--decode", decode, "Print the text of an llm.c shard and exit");
  app.add_flag("-q,--quiet", quiet, "No progress line");
  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<Gpt2Tokenizer> tok;
  try {
    tok = std::make_unique<Gpt2Tokenizer>(Gpt2Tokenizer::find_vocab_dir(vocab));
  } catch (const std::exception& e) {
    std::cerr << "mousse-tokenize: " << e.what() << "\n";
    return 2;
  }
  if (!decode.empty()) return decode_shard(decode, *tok);
  if (inputs.empty() || out_dir.empty()) {
    std::cerr << "mousse-tokenize: need INPUT... and --out DIR (or --decode SHARD); see --help\n";
    return 2;
  }
  if (threads == 0) threads = 1;

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

  std::vector<std::string> files;
  try {
    files = expand_inputs(inputs);
  } catch (const std::exception& e) {
    std::cerr << "mousse-tokenize: " << e.what() << "\n";
    return 1;
  }
  uint64_t total_file_bytes = 0;
  std::vector<uint64_t> file_sizes;
  for (auto& f : files) {
    struct stat st;
    uint64_t sz = (stat(f.c_str(), &st) == 0) ? uint64_t(st.st_size) : 0;
    file_sizes.push_back(sz);
    total_file_bytes += sz;
  }
  {
    struct stat st;
    if (stat(out_dir.c_str(), &st) != 0) {
      std::error_code ec;
      std::filesystem::create_directories(out_dir, ec);
      if (ec) {
        std::cerr << "mousse-tokenize: cannot create output directory " << out_dir << ": " << ec.message() << "\n";
        return 1;
      }
    } else if (!S_ISDIR(st.st_mode)) {
      std::cerr << "mousse-tokenize: --out " << out_dir << " is not a directory\n";
      return 1;
    }
  }

  ShardWriter writer(out_dir, name, shard_tokens, val_tokens);
  const size_t kBatchBytes = 1 << 20;
  const size_t max_inflight = threads == 1 ? 1 : 4 * threads;

  // Shared state for the worker pool.
  std::mutex mu;
  std::condition_variable cv_work, cv_done;
  std::queue<Job*> todo;
  bool stop = false;
  std::vector<std::thread> pool;
  if (threads > 1) {
    for (unsigned t = 0; t < threads; ++t)
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
    double mbs = el > 0 ? text_bytes / 1e6 / el : 0, tps = el > 0 ? writer.tokens_written() / el : 0;
    double frac = total_file_bytes ? double(file_bytes_done) / double(total_file_bytes) : 0;
    double eta = frac > 0 ? el * (1 - frac) / frac : -1;
    char line[256];
    std::snprintf(line, sizeof line, "%s%llu docs | %.1f MB | %.2f MB/s | %.2fM tok/s | %llu tokens | %.0f%% | ETA %s",
                  tty ? "\r" : "", (unsigned long long)docs, text_bytes / 1e6, mbs, tps / 1e6,
                  (unsigned long long)writer.tokens_written(), frac * 100, final_line ? "0m00s" : human_duration(eta).c_str());
    std::fputs(line, stderr);
    if (!tty || final_line) std::fputc('\n', stderr);
    std::fflush(stderr);
  };

  std::deque<std::unique_ptr<Job>> inflight;
  size_t file_idx = 0;
  std::unique_ptr<DocReader> reader;
  uint64_t bytes_before_file = 0;
  bool input_done = false;

  auto consume = [&](Job& job) {
    if (!job.res.error.empty()) {
      error = job.res.error;
      return false;
    }
    writer.write(job.res.tokens.data(), job.res.tokens.size());
    docs += job.res.docs;
    text_bytes += job.res.text_bytes;
    replaced += job.res.replaced;
    file_bytes_done = job.file_bytes_consumed;
    return true;
  };

  try {
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
      if (!quiet) {
        auto now = Clock::now();
        if (now - last_report > std::chrono::milliseconds(tty ? 500 : 10000)) {
          report(false);
          last_report = now;
        }
      }
    }
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

  if (!error.empty()) {
    writer.abort();
    if (!quiet && docs) report(false);
    std::cerr << "mousse-tokenize: error: " << error << "\n";
    std::cerr << "mousse-tokenize: stopped; " << writer.shards().size()
              << " complete shard(s) were written before the error, the shard in progress was removed\n";
    return 1;
  }
  try {
    writer.finish();
  } catch (const std::exception& e) {
    writer.abort();
    std::cerr << "mousse-tokenize: error: " << e.what() << "\n";
    return 1;
  }
  double el = std::chrono::duration<double>(Clock::now() - t0).count();
  file_bytes_done = total_file_bytes;
  if (!quiet) report(true);
  std::fprintf(stderr,
               "mousse-tokenize: %zu file(s), %llu documents, %.1f MB of text, %llu tokens in %zu shard(s) -> %s "
               "in %.2f s (%.2f MB/s, %.2fM tok/s, %u thread(s))",
               files.size(), (unsigned long long)docs, text_bytes / 1e6, (unsigned long long)writer.tokens_written(),
               writer.shards().size(), out_dir.c_str(), el, el > 0 ? text_bytes / 1e6 / el : 0,
               el > 0 ? writer.tokens_written() / 1e6 / el : 0, threads);
  if (skipped) std::fprintf(stderr, "; %llu null documents skipped", (unsigned long long)skipped);
  // Shards of an earlier, longer run with the same name would silently extend this one: warn.
  std::vector<std::string> stale;
  {
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator(out_dir, ec)) {
      std::string f = e.path().filename().string();
      if (f.rfind(name + "_", 0) != 0 || f.size() < 11 || f.compare(f.size() - 4, 4, ".bin") != 0) continue;
      std::string full = out_dir + "/" + f;
      bool ours = false;
      for (auto& w : writer.shards()) ours |= (w == full);
      if (!ours) stale.push_back(f);
    }
  }
  if (replaced) std::fprintf(stderr, "; %llu invalid UTF-8 sequences replaced by U+FFFD", (unsigned long long)replaced);
  std::fputc('\n', stderr);
  if (!stale.empty())
    std::fprintf(stderr, "mousse-tokenize: warning: %zu other %s_*.bin file(s) in %s were not written by this run "
                 "(e.g. %s); remove them if they are left over from an earlier run\n",
                 stale.size(), name.c_str(), out_dir.c_str(), stale.front().c_str());
  return 0;
}
