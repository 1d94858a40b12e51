// A look at raw YAML text before yaml-cpp sees it. yaml-cpp's scanner
// queues a token for every '[' or '{' it has not yet resolved (each may
// start a key), so a megabyte of "[[[[" costs hundreds of megabytes before
// any event reaches a handler that could count the depth. This pass costs
// one read of the text and no memory: it follows quotes, comments, block
// scalars and flow collections well enough to bound what the parser will
// build, and refuses text whose nesting or number of nodes would cross the
// bounds. It never accepts what the parser refuses (the parser still runs);
// it may refuse odd but valid YAML only when that YAML really is that deep
// or that large.
#pragma once

#include <string_view>

#include "encoding/document_bounds.h"
#include "util/status.h"

namespace stormbroker {

// INVALID_ARGUMENT ("the YAML is nested deeper than N" / "has more than N
// values") when `text` would cross `bounds`.
Status PrescanYaml(std::string_view text, const DocumentBounds& bounds);

}  // namespace stormbroker
