#pragma once
// The run's directories (log.dir, checkpoint.dir), checked and claimed before any work:
//  - each is created if needed and must take a new file (a probe is created, written and
//    removed), so an unwritable checkpoint.dir is an error at start, not at the first save;
//  - each is locked for the run's lifetime: an exclusive flock() on `<dir>/mousse.lock`, which
//    also holds the holder's pid and host. A second `mousse train` on the same directory (with
//    or without --resume) stops with the directory and that pid instead of mixing its files in.
//    The lock ends with the process, however it ends (kill -9 included); the file stays, empty
//    of meaning, and is harmless. On a filesystem without locks a warning says the run is not
//    protected. Under MPI rank 0 writes the logs and the main checkpoint file, so rank 0 locks:
//    a second job's rank 0 finds the lock and ends that job;
//  - a fresh start (no --resume) refuses a directory that holds a run (a non-empty metrics.jsonl
//    or checkpoint files), naming --resume, a fresh directory and --overwrite; with --overwrite
//    the earlier run's files (metrics.jsonl, config.json, every ckpt_* file) are removed first,
//    and the message lists them. Nothing else in the directories is touched;
//  - temporaries of a write that was killed (`ckpt_*.safetensors.tmp.<pid>`, the shards',
//    `metrics.jsonl.tmp.<pid>`, `config.json.tmp.<pid>`) are removed at every start and resume.
#include <string>
#include <vector>

namespace mousse {

struct RunConfig;

struct RunDirOptions {
  bool resume = false;     // --resume: the directory's run is continued
  bool overwrite = false;  // --overwrite: a fresh start replaces the run found there
  bool print = true;       // report removed files and warnings on stdout
};

class RunDirectories {
 public:
  // Does all of the above for log.dir and checkpoint.dir of `cfg` (the lock: one when they are
  // the same directory). Throws mousse::Error naming the key, the directory and what to do.
  RunDirectories(const RunConfig& cfg, const RunDirOptions& opt);
  ~RunDirectories();  // releases the locks
  RunDirectories(const RunDirectories&) = delete;
  RunDirectories& operator=(const RunDirectories&) = delete;

 private:
  void claim(const RunConfig& cfg, const RunDirOptions& opt);
  std::vector<int> lock_fds_;
};

// Creates `dir` (and its parents) if needed and checks that a file can be created, written and
// removed there; `key` ("checkpoint.dir") names the setting in the error. Every rank of a job
// calls it for checkpoint.dir (each writes its optimizer shard there).
void check_writable_directory(const std::string& dir, const std::string& key);

// Files of an earlier run: log.dir's metrics.jsonl (when not empty) and config.json, and every
// checkpoint file in checkpoint.dir (main files, per-rank shards, their temporaries).
std::vector<std::string> earlier_run_files(const std::string& log_dir, const std::string& ckpt_dir);

// Removes the temporaries of killed atomic writes in `dir` (the names above, any pid); returns
// the file names removed.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

}  // namespace mousse
