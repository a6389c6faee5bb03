// StorePart: one store of a world of several, given alone on the command line. Alone it cannot
// open as the world (a majority of the last epoch's members must meet), so the CLI shows what
// this store itself holds and says that it is a part: which member it is, of which world
// (epoch, members, nodes), the world objects it holds chunks of (by their world names, from
// each chunk object's origin record) and its space. Opened in this process alone (the store's
// LOCK taken, as a rank takes it); nothing is written but what any Open of the store does
// (recovery of unsealed writes a crash left).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/membership.h"
#include "shoal/engine.h"

namespace shoal::cli {

struct StorePart {
  std::string dir;
  std::string member_id;
  engine::Membership membership;    // its world's last epoch, as this store recorded it
  std::vector<LocalObject> objects;  // world objects with chunks here, by name
  LocalSpace space;
};

// The store's part when its last epoch had other members; nullopt when the store was a world
// of its own (open it as one); an error when it cannot be read (in use: PermissionDenied).
Result<std::optional<StorePart>> ReadStorePart(const std::string& dir);

// `shoal status`, `ls` and `du` on a part (commands.h's exit codes).
int PartStatus(const StorePart& p, bool json);
int PartLs(const StorePart& p, const std::string& dir, bool long_format, bool json);
int PartDu(const StorePart& p, bool json);

}  // namespace shoal::cli
