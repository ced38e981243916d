#include "train/reshard.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "core/safetensors.h"

namespace mousse {

namespace {
const std::string kOptim = "optimizer/";  // the state tensors' prefix in checkpoint files
}  // namespace

std::string state_parameter(const std::string& state_name) {
  const size_t a = state_name.find('.');
  if (a == std::string::npos) return "";
  const size_t b = state_name.find('.', a + 1);
  if (b == std::string::npos || b + 1 >= state_name.size()) return "";
  return state_name.substr(b + 1);
}

std::vector<StatePart> local_state_parts(const Arena& arena, const DataParallel* dp) {
  std::vector<StatePart> parts;
  for (const Arena::Entry& e : arena.entries()) {
    if (e.category != "optimizer") continue;
    StatePart p{e.name, e.target, 0, e.target->numel()};
    int64_t start = 0, count = 0, total = 0;
    if (dp && dp->zero1_range(state_parameter(e.name), &start, &count, &total)) {
      MOUSSE_CHECK(count == p.tensor->numel(), "optimizer state ", e.name, " has ",
                   p.tensor->numel(), " elements, its ZeRO-1 slice ", count);
      p.offset = start;
      p.total = total;
    }
    parts.push_back(p);
  }
  return parts;
}

json state_layout(const std::vector<StatePart>& parts) {
  json layout = json::object();
  for (const StatePart& p : parts) layout[p.name] = {p.offset, p.total};
  return layout;
}

void StateIndex::add(const std::string& name, int file, int64_t offset, int64_t count,
                     int64_t total) {
  pieces_[name].push_back(Piece{file, offset, count, total});
}

void StateIndex::add_unplaced(const std::string& name, int file, int rank, int world,
                              int64_t count) {
  pieces_[name].push_back(Piece{file, -1, count, -1, rank, world});
}

std::vector<StateIndex::Read> StateIndex::reads(const std::string& name, int64_t offset,
                                                int64_t count, int64_t total,
                                                const std::string& where) const {
  auto it = pieces_.find(name);
  if (it == pieces_.end())
    fail(where, ": has no optimizer state '", name, "': it was written with a different ",
         "optimizer configuration (or by an earlier version of mousse); resume with the config ",
         "it was made with");
  std::vector<Read> out;
  for (const Piece& p : it->second) {
    int64_t first = p.offset, whole = p.total;
    if (first < 0) {  // a shard without a layout: the whole tensor or rank's even slice
      whole = total;
      if (p.count == total) {
        first = 0;
      } else {
        const std::vector<int64_t> c = even_split(total, p.world);
        if (c[size_t(p.rank)] != p.count)
          fail(where, ": optimizer state '", name, "' of rank ", p.rank, " of ", p.world,
               " holds ", p.count, " elements, its slice of ", total, " has ",
               c[size_t(p.rank)], " (a checkpoint of a different model?)");
        first = 0;
        for (int r = 0; r < p.rank; r++) first += c[size_t(r)];
      }
    }
    if (whole != total)
      fail(where, ": optimizer state '", name, "' has ", whole, " elements, this run's has ",
           total, " (a checkpoint of a different model or optimizer configuration?)");
    const int64_t lo = std::max(offset, first), hi = std::min(offset + count, first + p.count);
    if (lo < hi) out.push_back(Read{p.file, lo - first, lo - offset, hi - lo});
  }
  std::sort(out.begin(), out.end(), [](const Read& a, const Read& b) { return a.dst < b.dst; });
  int64_t next = 0;  // the pieces must tile [offset, offset + count): no gap, no overlap
  for (const Read& r : out) {
    if (r.dst != next)
      fail(where, ": optimizer state '", name, "': ",
           r.dst < next ? "elements stored twice" : "elements missing", " at [",
           offset + std::min(r.dst, next), ", ", offset + std::max(r.dst, next),
           ") of its saved pieces (a corrupt or mixed checkpoint)");
    next += r.count;
  }
  if (next != count)
    fail(where, ": optimizer state '", name, "': elements missing at [", offset + next, ", ",
         offset + count, ") of its saved pieces (a corrupt or mixed checkpoint)");
  return out;
}

int64_t StateIndex::elements() const {
  int64_t n = 0;
  for (const auto& [name, ps] : pieces_)
    for (const Piece& p : ps) n += p.count;
  return n;
}

namespace {

// The files a checkpoint's optimizer state is in, what each holds, and each file's host-side
// optimizer state ({"<group>": {"type", "extra"}}), in rank order.
struct StateSources {
  std::vector<std::unique_ptr<SafeTensorsFile>> files;  // a shard per saving rank, or the main file
  std::vector<json> optimizers;
  StateIndex index;
};

StateSources open_sources(const std::string& main_path, const CheckpointMeta& meta) {
  StateSources s;
  auto main = std::make_unique<SafeTensorsFile>(main_path);
  bool in_main = false;
  for (const auto& e : main->entries()) in_main = in_main || e.name.rfind(kOptim, 0) == 0;
  if (in_main) {  // a single process: every tensor whole in the main file
    for (const auto& e : main->entries())
      if (e.name.rfind(kOptim, 0) == 0) {
        const std::string name = e.name.substr(kOptim.size());
        s.index.add(name, 0, 0, e.shape.numel(), e.shape.numel());
      }
    s.files.push_back(std::move(main));
    s.optimizers.push_back(meta.optimizers);
    return s;
  }
  const int W = meta.world_size;
  if (W < 1) fail(main_path, ": corrupt checkpoint metadata (world_size ", W, ")");
  for (int r = 0; r < W; r++) {
    const std::string path = checkpoint_shard_path(main_path, r, W);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
      fail(path, ": missing. The checkpoint ", main_path, " was written by ", W,
           " ranks and its optimizer state is split over one file per rank: copy every ",
           "ckpt_*.rank*-of-", W, ".safetensors file with it");
    auto f = std::make_unique<SafeTensorsFile>(path);
    const json m = read_shard_meta(path, r, W, meta.step);
    const json layout = m.value("layout", json());
    for (const auto& e : f->entries()) {
      if (e.name.rfind(kOptim, 0) != 0) continue;
      const std::string name = e.name.substr(kOptim.size());
      const int64_t n = e.shape.numel();
      if (layout.is_null()) {  // written before resharding existed
        s.index.add_unplaced(name, r, r, W, n);
        continue;
      }
      const json* at = layout.contains(name) ? &layout[name] : nullptr;
      int64_t offset = -1, total = -1;
      if (at && at->is_array() && at->size() == 2 && (*at)[0].is_number_integer() &&
          (*at)[1].is_number_integer()) {
        offset = (*at)[0].get<int64_t>();
        total = (*at)[1].get<int64_t>();
      }
      if (offset < 0 || total < 0 || offset + n > total)
        fail(path, ": the layout entry of optimizer state '", name, "' is ",
             at ? at->dump() : "missing", ", expected [offset, total] holding its ", n,
             " elements");
      s.index.add(name, r, offset, n, total);
    }
    s.files.push_back(std::move(f));
    s.optimizers.push_back(m.at("optimizers"));
  }
  return s;
}

}  // namespace

json read_shard_meta(const std::string& path, int rank, int world, int64_t step) {
  SafeTensorsFile f(path);
  const json m = f.metadata_json("mousse_shard");
  if (m.is_null()) fail(path, ": not a mousse checkpoint shard (no 'mousse_shard' metadata)");
  // Typed reads: corrupt metadata is an error naming the file and the field.
  const ConfigNode meta(m, "mousse_shard", path);
  const int64_t m_world = meta.integer("world_size", {1, kMaxInt32});
  const int64_t m_rank = meta.integer("rank", {0, m_world - 1});
  const int64_t m_step = meta.integer("step", {0, kMaxCount});
  meta.child("optimizers", true);
  if (m_rank != rank || m_world != world || m_step != step)
    fail(path, ": written by rank ", m_rank, " of ", m_world, " at step ", m_step,
         ", expected rank ", rank, " of ", world, " at step ", step,
         " (a file of another checkpoint?)");
  return m;
}

std::string load_optimizer_state(const std::string& main_path, const CheckpointMeta& meta,
                                 Communicator& comm, const DataParallel* dp,
                                 OptimizerSetup& setup, Ops& ops, const Arena& arena) {
  const int rank = comm.rank(), world = comm.world_size();
  for (ParamGroup& g : setup.groups) {
    const json& saved = meta.optimizers.contains(g.name) ? meta.optimizers[g.name] : json();
    if (!saved.is_object() || saved.value("type", "") != g.optimizer->type())
      fail(main_path, ": optimizer group '", g.name, "' was trained with ",
           saved.is_object() ? saved.value("type", "?") : "?", ", this config uses ",
           g.optimizer->type(), "; resume with the optimizer it was made with");
  }
  StateSources src = open_sources(main_path, meta);

  // State tensors: each part from the pieces that overlap it.
  int64_t loaded = 0, moved = 0, parts = 0;
  double bytes_read = 0;
  for (const StatePart& p : local_state_parts(arena, dp)) {
    const Tensor& t = *p.tensor;
    const int64_t n = t.numel();
    const std::vector<StateIndex::Read> reads =
        src.index.reads(p.name, p.offset, n, p.total, main_path);
    const size_t esz = dtype_size(t.dtype);
    std::vector<char> host(t.bytes());
    for (const StateIndex::Read& r : reads) {
      const SafeTensorsFile& f = *src.files[size_t(r.file)];
      const auto* e = f.find(kOptim + p.name);
      if (p.offset == 0 && n == p.total && e->shape.numel() == n && e->shape.ndim > 1 &&
          t.shape.ndim > 1 && e->shape != t.shape)
        fail(f.path(), ": optimizer state '", p.name, "' has shape ", e->shape.str(),
             ", this run's ", t.shape.str(), " (a checkpoint of a different model?)");
      f.read_elements(kOptim + p.name, t.dtype, r.first, r.count,
                      host.data() + size_t(r.dst) * esz);
      bytes_read += double(r.count) * double(dtype_size(e->dtype));
    }
    ops.from_host(t, host.data());
    // In place: all of it from one piece that is exactly this part, saved by this rank index.
    const bool kept = reads.size() == 1 && reads[0].file == rank && reads[0].first == 0 &&
                      reads[0].count == n &&
                      src.files[size_t(rank)]->find(kOptim + p.name)->shape.numel() == n;
    moved += kept ? 0 : 1;
    loaded += n;
    parts++;
  }
  // Over all ranks, the parts must use up the checkpoint: anything left over was state of an
  // optimizer configuration this run does not have.
  const double all_loaded = comm.all_reduce_sum(double(loaded));
  if (all_loaded != double(src.index.elements()))
    fail(main_path, ": holds ", src.index.elements(), " optimizer state elements in ",
         src.index.tensors(), " tensors, but the ", world, " rank(s) of this run take ",
         int64_t(all_loaded), ": it was written with a different optimizer configuration; ",
         "resume with the config it was made with");

  // Host-side state: each group's, merged from every saving rank's.
  for (ParamGroup& g : setup.groups) {
    std::vector<json> saved;
    for (size_t i = 0; i < src.optimizers.size(); i++) {
      const json& o = src.optimizers[i];
      if (!o.contains(g.name) || !o[g.name].is_object())
        fail(src.files[i]->path(), ": has no host-side state of optimizer group '", g.name, "'");
      saved.push_back(o[g.name].value("extra", json::object()));
    }
    try {  // the optimizer's host-side state, as the saving ranks left it
      g.optimizer->load_extra(g.optimizer->merge_extra(saved, rank));
    } catch (const json::exception& e) {
      fail(main_path, ": corrupt host-side state of optimizer group '", g.name, "' (",
           json_error_text(e), ")");
    } catch (const Error& e) {
      fail(main_path, ": host-side state of optimizer group '", g.name, "': ", e.what());
    }
  }

  const int saved_world = meta.world_size;
  const double all_moved = comm.all_reduce_sum(double(moved));
  const double all_parts = comm.all_reduce_sum(double(parts));
  const double most_read = comm.all_reduce_max(bytes_read);
  if (saved_world == world && all_moved == 0) return "";
  char line[256];
  std::snprintf(line, sizeof line,
                "resharded the optimizer state from %d to %d rank%s: %lld of %lld state tensors "
                "(ZeRO-1 slices counted per rank) moved to another rank or re-cut; %s read by "
                "the rank that read most",
                saved_world, world, world == 1 ? "" : "s", (long long)all_moved,
                (long long)all_parts, format_bytes(most_read).c_str());
  return line;
}

int64_t resume_data_position(const std::string& path, const CheckpointMeta& meta, int world) {
  if (meta.data_batches < 0 || meta.data_batches % world != 0)
    fail(path, ": its data position (", meta.data_batches, " micro-batches of all ranks ",
         "together) does not divide among ", world, " ranks");
  return meta.data_batches / world;
}

}  // namespace mousse
