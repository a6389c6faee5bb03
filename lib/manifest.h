// The manifest of a committed checkpoint: its JSON encoding (the object
// <root>/commits/<seq>.<tag>) and the names of the objects that make up a checkpoint.
//
// JSON so that any tool (jq, Python's json) reads a checkpoint's contents without shoal's
// code; blob names and metadata must therefore be UTF-8.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "shoal/checkpoint.h"
#include "shoal/result.h"

namespace shoal {

// InvalidArgument unless `tag` is 1..200 bytes of [A-Za-z0-9._-] not starting with '.'.
Status ValidateTag(std::string_view tag);
bool IsUtf8(std::string_view s);

// Where a checkpoint's objects live below `root`:
//   <root>/data/<tag>/<blob name>        BlobPath
//   <root>/commits/<seq>.<tag>           ManifestPath (ManifestName is the last component)
std::string DataDir(std::string_view root);
std::string CommitsDir(std::string_view root);
std::string BlobPath(std::string_view root, std::string_view tag, std::string_view name);
std::string ManifestPath(std::string_view root, uint64_t sequence, std::string_view tag);

// "<seq, 16 digits>.<tag>" and its inverse (nullopt for a foreign name).
std::string ManifestName(uint64_t sequence, std::string_view tag);
std::optional<TagInfo> ParseManifestName(std::string_view name);

// InvalidArgument when a name or the metadata is not UTF-8.
Result<std::string> EncodeManifest(const CheckpointManifest& manifest);
// Corruption (naming `what`) for anything but a well-formed manifest.
Result<CheckpointManifest> DecodeManifest(std::string_view json, std::string_view what);

}  // namespace shoal
