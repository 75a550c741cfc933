#include "storage/user_data.h"

#include "storage/database.h"
#include "storage/keyring.h"
#include "storage/record_store.h"
#include "storage/user_store.h"

namespace hearth::storage {

UserData load_user_data(Database& db, Keyring& keyring, const std::string& user_name) {
  UserRecord user = UserStore(db).get(user_name);
  RecordStore records(db, keyring);
  UserData data;
  data.user_id = user.id;
  for (const RecordInfo& info : records.list(user.id)) {
    if (info.kind == RecordKind::kDocument) {
      data.documents.push_back(records.open_document(user.id, info.id));
    } else {
      data.examples.push_back(records.open_example(user.id, info.id));
    }
  }
  return data;
}

}  // namespace hearth::storage
