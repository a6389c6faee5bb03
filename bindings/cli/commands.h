// The store commands of `shoal` (docs/cli.md): each runs against an Engine that sees the whole
// world (a Session's: the stores opened here, or a live job observed), prints to stdout (a table, or one JSON document with
// --json), reports errors on stderr as "shoal CMD: what: Status", and returns the exit code:
// 0 done, 1 an error (the other items of the command still ran), 2 bad usage.
//
// Paths are the engine's (engine/path.h): relative, '/'-separated, "" or "/" for the root; a
// leading '/' is dropped for convenience.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bindings/cli/session.h"
#include "shoal/engine.h"

namespace shoal::cli {

std::string EnginePath(std::string path);

int Ls(Engine& e, const std::string& path, bool long_format, bool recursive, bool json);
int StatCmd(Engine& e, const std::vector<std::string>& paths, bool json);
int Du(Engine& e, const std::vector<std::string>& paths, bool json);
int Cat(Engine& e, const std::vector<std::string>& paths);
// Objects (a tree with -r semantics when `src` is a directory) to local files. Files already
// there with the object's size and content are left alone ("skipped").
int Get(Engine& e, const std::string& src, const std::string& dst, bool progress);
// Local files (a directory: its tree) to objects. A rerun skips objects already sealed with the
// same size and CRC32C; an object of the same name with other content is refused unless
// `replace` (then removed and written again).
int Put(Engine& e, const std::string& src, const std::string& dst, bool replace, bool progress);
int Rm(Engine& e, const std::vector<std::string>& paths, bool recursive);
int CkptList(Engine& e, const std::string& root, bool json);
int CkptShow(Engine& e, const std::string& root, const std::string& tag, bool json);
int CkptRm(Engine& e, const std::string& root, const std::vector<std::string>& tags);
int CkptRetain(Engine& e, const std::string& root, uint32_t keep_last);
// The members (node, what each holds, space, background work, the main counters of its rank;
// every counter and latency with `counters`), the epoch and replica count.
int StatusCmd(Session& w, bool json, bool counters);
// Every member re-reads its chunks and checks their CRC32C now; damaged copies are repaired
// from replicas. 1 when a damaged object could not be repaired.
int ScrubCmd(Session& w, bool json);
// Every object's chunks: how many live replicas each has (Locate), and whether a chunk with
// none reads. Changes nothing. 1 when an object is degraded or unreadable.
int FsckCmd(Session& w, bool json);
int RepairCmd(Engine& e, bool json);

}  // namespace shoal::cli
