#pragma once
// Whole-file writes that either happen completely or not at all: the text goes to
// `<path>.tmp.<pid>` in the same directory, is flushed to disk (fsync), renamed over `path`, and
// the directory entry is flushed too. A crash or kill at any point leaves either the old file or
// the new one, never a mix or a truncated file; a failure (disk full, I/O error, a directory in
// the way) throws mousse::Error naming the file and leaves the old file as it was. A temporary
// left by a killed write is removed at the next start of the run (train/run_dir.h).
#include <string>

namespace mousse {

void write_file_atomic(const std::string& path, const std::string& contents);

// fsync of a directory, so that a rename or unlink inside it survives a power loss. Errors are
// ignored where the filesystem cannot sync directories (EINVAL), reported otherwise.
void fsync_directory(const std::string& dir);

// "<path>.tmp.<pid>": the temporary name of every atomic write in mousse (checkpoints, shards,
// logs), which run_dir.cpp recognises as a leftover of a killed write.
std::string temporary_path(const std::string& path);

}  // namespace mousse
