#include "storage/damaged_record.h"

#include "storage/backup.h"

namespace hearth::storage {

void fail_damaged_record(const privacy::RecordRef& where, const std::string& db_path) {
  std::string remedy;
  if (where.kind == "documents" || where.kind == "examples" || where.kind == "documents.source") {
    remedy = "delete it (`hearth data delete --user NAME --kind " +
             std::string(where.kind == "examples" ? "example" : "document") + " --id " + std::to_string(where.record_id) +
             "`) and ingest it again";
  } else if (where.kind == "adapter_file") {
    remedy = "train that adapter again";
  } else if (where.kind == "checkpoint_file") {
    remedy = "start the training job again without --resume";
  } else {
    remedy = "forget and re-create the user";
  }
  const BackupInfo backup = backup_info(db_path);
  const std::string restore = backup.exists ? ", or restore the last good backup (made " + format_utc(backup.made) +
                                                  ") with `hearth doctor --restore`"
                                            : "";
  fail(ErrorCode::kCorruptFile, where.describe() +
                                    " is damaged (its sealed bytes fail authentication: changed on disk, truncated or "
                                    "moved from another record); the key is right and only this record is affected: " +
                                    remedy + restore);
}

}  // namespace hearth::storage
