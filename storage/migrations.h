// The schema of the Hearth database as an ordered list of migrations; each runs once, in its
// own transaction, and is recorded in schema_migrations.
#pragma once

namespace hearth::storage {

class Database;

// The newest schema version this build knows.
int latest_schema_version();

// Brings the database up to latest_schema_version(). Refuses (kUnsupported) a database
// written by a newer Hearth. Safe when several processes open the same new file at once.
void apply_migrations(Database& db);

}  // namespace hearth::storage
