// `hearth serve`, the real binary: two users' requests interleaved on stdin are answered as the
// single-adapter `hearth generate --user` runs answer them; bad requests get one error line each
// while serving goes on; the Unix socket is owner-only, speaks the OpenAI chat-completions shape,
// cancels on request; the server runs in the no-network sandbox.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <set>

#include "cli_runner.h"
#include "inference/model_files.h"
#include "serve_process.h"
#include "serving_fixtures.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;
using testing::adapter_kind;

// A reply's "event" ("" for no reply or another shape).
std::string event(const Json& j) { return j.is_object() ? j.value("event", "") : ""; }

class ServeCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = testing::fresh_temp_dir("serve_cli");
    home_ = dir_ / "home";
    key_ = dir_ / "key";
    {
      std::ofstream k(key_, std::ios::binary);
      k << testing::serving_key();
    }
    fs::permissions(key_, fs::perms::owner_read | fs::perms::owner_write);
    const auto key = privacy::MasterKeySource::from_key_file(key_);  // the CLI unlocks with the file
    engine::Engine e(testing::serving_engine_options(home_, key));
    e.load_base(testing::stories_nf4_spec());
    const LoadedModel& base = e.base();
    testing::ensure_user(e, "ann");
    testing::ensure_user(e, "bob");
    testing::register_adapter(home_, "ann", "default",
                              *testing::random_adapter(*base.decoder, adapter_kind(AdapterMethod::kLoRA, 8, 16, "all", 5), 0.05),
                              base.fingerprint, key);
    testing::register_adapter(home_, "bob", "default",
                              *testing::random_adapter(*base.decoder, adapter_kind(AdapterMethod::kDoRA, 4, 8, "q,v,down", 6), 0.05),
                              base.fingerprint, key);
    testing::register_adapter(home_, "bob", "foreign",
                              *testing::random_adapter(*base.decoder, adapter_kind(AdapterMethod::kLoRA, 4, 8, "q", 7), 0.05),
                              "another-base", key);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static std::vector<std::string> serve_args(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> a = {"serve", "--home", home_.string(), "--key-file", key_.string(),
                                  "--model", testing::stories260k_dir().string(), "--quant", "nf4"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  // What the server answers to each request sent alone (the next one only after the last is
  // done), so each runs with only its own adapter in its batch. (`hearth generate` runs a single
  // request through the prepared decode step, whose float sums differ from the batched path's, so
  // its greedy text may part from the server's after a near tie.)
  static std::map<std::string, std::string> serve_one_at_a_time(
      const std::vector<std::tuple<std::string, std::string, std::string>>& asks, int max_tokens) {
    testing::ServeProcess serve(serve_args(), {});
    EXPECT_EQ(serve.out().next_json().value("event", ""), "ready");
    std::map<std::string, std::string> texts;
    for (const auto& [id, user, prompt] : asks) {
      serve.send(request(id, user, prompt, max_tokens));
      for (Json reply = serve.out().next_json(); !reply.is_null(); reply = serve.out().next_json()) {
        if (reply.value("event", "") == "done") {
          texts[id] = reply.at("text").get<std::string>();
          break;
        }
      }
    }
    serve.close_stdin();
    EXPECT_EQ(serve.wait(), 0);
    return texts;
  }

  static Json request(const std::string& id, const std::string& user, const std::string& prompt, int max_tokens) {
    return {{"id", id}, {"user", user}, {"adapter", "default"}, {"prompt", prompt}, {"max_tokens", max_tokens},
            {"temperature", 0}};
  }

  static inline fs::path dir_, home_, key_;
};

TEST_F(ServeCliTest, TwoUsersInterleavedEqualTheirSingleAdapterRuns) {
  testing::ServeProcess serve(serve_args(), {});
  const Json ready = serve.out().next_json();
  ASSERT_EQ(event(ready), "ready") << ready.dump();
  EXPECT_TRUE(ready.at("sandbox").get<bool>());
  EXPECT_TRUE(ready.at("sockets_blocked").get<bool>());
  const std::vector<std::tuple<std::string, std::string, std::string>> asks = {
      {"a1", "ann", "Once upon a time"}, {"b1", "bob", "Once upon a time"}, {"a2", "ann", "The little dog"},
      {"b2", "bob", "Lily wanted"}};
  for (const auto& [id, user, prompt] : asks) serve.send(request(id, user, prompt, 24));
  std::map<std::string, std::string> streamed, done;
  std::vector<std::string> order;  // ids of token events as they came
  while (done.size() < asks.size()) {
    const Json reply = serve.out().next_json();
    ASSERT_FALSE(reply.is_null()) << "no reply in time";
    const std::string id = reply.at("id").get<std::string>(), event = reply.at("event").get<std::string>();
    ASSERT_NE(event, "error") << reply.dump();
    if (event == "token") {
      streamed[id] += reply.at("text").get<std::string>();
      order.push_back(id);
    }
    if (event == "done") done[id] = reply.at("text").get<std::string>();
  }
  serve.close_stdin();
  EXPECT_EQ(serve.wait(), 0);
  // The requests stepped together: tokens of different requests alternate in the stream. One
  // after another, the stream would change request exactly 3 times. (Not "within the first four
  // tokens": on a loaded machine the first request may take a few steps alone before the server
  // has read the other lines.)
  int changes = 0;
  for (size_t i = 1; i < order.size(); ++i) changes += order[i] != order[i - 1] ? 1 : 0;
  EXPECT_GT(changes, 3) << "requests were answered one after another, not in one batch";
  const std::map<std::string, std::string> alone = serve_one_at_a_time(asks, 24);
  for (const auto& [id, user, prompt] : asks) {
    EXPECT_EQ(streamed[id], done[id]) << id;
    EXPECT_EQ(done[id], alone.at(id)) << id << " (" << user << ")";
  }
  EXPECT_NE(done["a1"], done["b1"]) << "the two users' adapters must answer differently";
}

TEST_F(ServeCliTest, BadRequestsGetOneErrorEachAndServingGoesOn) {
  testing::ServeProcess serve(serve_args(), {});
  ASSERT_EQ(event(serve.out().next_json()), "ready");
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"this is not json", "request line"},
      {R"({"id": "t1", "prompt": 5})", "prompt"},
      {R"({"id": "t2", "prompt": "x", "bogus": 1})", "bogus"},
      {R"({"id": "t3", "prompt": "x", "user": "nobody", "adapter": "default"})", "nobody"},
      {R"({"id": "t4", "prompt": "x", "user": "ann", "adapter": "missing"})", "missing"},
      {R"({"id": "t5", "prompt": "x", "user": "bob", "adapter": "foreign"})", "base"},
      {R"({"id": "t6", "prompt": "x", "max_tokens": 1e30})", "max_tokens"},
      {R"({"cancel": "never-sent"})", "never-sent"},
      {R"({"id": "t7", "messages": []})", "messages"},
      {R"({"id": "t8", "prompt": "x", "ttt": {"steps": 3}})", "context"},
      {R"([1, 2, 3])", "object"},
  };
  for (const auto& [line, words] : bad) {
    serve.send(line);
    const Json reply = serve.out().next_json();
    ASSERT_TRUE(reply.contains("error")) << line << " -> " << reply.dump();
    const std::string message = reply["error"].is_object() ? reply["error"]["message"].get<std::string>()
                                                           : reply["error"].get<std::string>();
    EXPECT_NE(message.find(words), std::string::npos) << line << " -> " << message;
    if (line.find("\"id\"") != std::string::npos) {
      EXPECT_TRUE(reply.at("id").is_string()) << "the reply names the request: " << reply.dump();
    }
  }
  serve.send(request("good", "ann", "Once upon a time", 8));
  std::string text;
  for (;;) {
    const Json reply = serve.out().next_json();
    ASSERT_FALSE(reply.is_null());
    ASSERT_EQ(reply.at("id"), "good") << reply.dump();
    if (reply.at("event") == "done") {
      text = reply.at("text").get<std::string>();
      break;
    }
  }
  EXPECT_EQ(text, serve_one_at_a_time({{"good", "ann", "Once upon a time"}}, 8).at("good"));
  serve.close_stdin();
  EXPECT_EQ(serve.wait(), 0);
}

// On a chat model (a random-weight model of the "tiny" shape with a ChatML template).
TEST_F(ServeCliTest, OwnerOnlySocketSpeaksOpenAIAndCancels) {
  const fs::path tiny = dir_ / "tiny";
  if (!fs::exists(tiny / "config.json")) init_random_model("tiny", 3, tiny);
  const std::string socket = (dir_ / "s.sock").string();
  std::vector<std::string> args = {"serve", "--home", home_.string(), "--key-file", key_.string(), "--model",
                                   tiny.string(), "--socket", socket};
  testing::ServeProcess serve(args, {});
  const Json ready = serve.out().next_json();
  ASSERT_EQ(event(ready), "ready") << ready.dump();
  EXPECT_EQ(ready.value("socket", ""), socket);
  struct stat st {};
  ASSERT_EQ(::stat(socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the socket must be reachable by its owner only";
  // A second server on the same path refuses instead of taking it over.
  std::vector<std::string> second_args = args;
  second_args.push_back("--no-stdin");
  auto second = testing::run_hearth(second_args);
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.err.find("already listening"), std::string::npos) << second.err;

  const int fd = testing::connect_unix(socket);
  ASSERT_GE(fd, 0);
  testing::LineReader in(fd);
  auto send = [&](const Json& j) {
    const std::string l = j.dump() + "\n";
    ASSERT_EQ(::write(fd, l.data(), l.size()), ssize_t(l.size()));
  };
  const Json messages = {{{"role", "system"}, {"content", "You are brief."}}, {{"role", "user"}, {"content", "Hello there"}}};
  auto alone = testing::run_hearth({"generate", "--model", tiny.string(), "--chat", "--system", "You are brief.", "--prompt",
                                    "Hello there", "--max-tokens", "12", "--temperature", "0", "--json"});
  ASSERT_EQ(alone.exit_code, 0) << alone.err;
  const std::string expected =
      Json::parse(alone.out.substr(alone.out.rfind('\n', alone.out.size() - 2) + 1)).at("text").get<std::string>();

  // Streamed: chat.completion.chunk lines, the last with a finish_reason and the usage.
  send({{"model", "tiny"}, {"messages", messages}, {"max_tokens", 12}, {"temperature", 0}, {"stream", true}});
  std::string content;
  Json reply;
  for (;;) {
    reply = in.next_json();
    ASSERT_FALSE(reply.is_null());
    ASSERT_EQ(reply.value("object", ""), "chat.completion.chunk") << reply.dump();
    const Json& choice = reply.at("choices").at(0);
    if (!choice.at("finish_reason").is_null()) break;
    content += choice.at("delta").at("content").get<std::string>();
  }
  EXPECT_EQ(content, expected);
  EXPECT_GT(reply.at("usage").at("prompt_tokens").get<int64_t>(), 0) << reply.dump();
  // Not streamed: one chat.completion object; the system prompt's keys and values are reused.
  send({{"messages", messages}, {"max_tokens", 12}, {"temperature", 0}});
  reply = in.next_json();
  ASSERT_EQ(reply.value("object", ""), "chat.completion") << reply.dump();
  EXPECT_EQ(reply.at("choices").at(0).at("message").at("content").get<std::string>(), expected);

  send({{"id", "long"}, {"prompt", "Once upon a time"}, {"max_tokens", 100000}, {"ignore_stop", true}, {"stream", true}});
  reply = in.next_json();
  ASSERT_EQ(event(reply), "token") << reply.dump();
  send({{"cancel", "long"}});
  for (;;) {
    reply = in.next_json();
    ASSERT_FALSE(reply.is_null());
    if (event(reply) == "done") break;
  }
  EXPECT_EQ(reply.value("stop_reason", ""), "cancelled");
  ::close(fd);
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait(), 0);
  EXPECT_FALSE(fs::exists(socket)) << "the socket file goes with the server";
}

}  // namespace
}  // namespace hearth
