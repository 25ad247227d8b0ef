// Validation of snapshot files against docs/snapshot.schema.json, for every
// test that writes a snapshot. The validator is Debian's python3-jsonschema,
// run through tests/support/validate_snapshot.py.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace memobserve::testing {

struct SchemaCheck {
    bool validator_found = false;
    bool valid = false;
    std::string messages;  // one line per violation, or why the validator did not run
};

SchemaCheck validate_snapshot_file(const std::string& path);

// Catch assertions that the file at `path` matches the schema. When the
// validator is missing, this fails under root (where scripts/install-deps.sh
// installs it) and warns that the check was skipped otherwise.
void check_snapshot_schema(const std::string& path);
// The same for a document in memory, written to a temporary file first.
void check_snapshot_schema(const nlohmann::json& document);

}  // namespace memobserve::testing
