using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;

namespace DiffusersSharp.Server;

/// <summary>
/// Finished jobs on disk: each image as <c>results/{job}-{i}.png</c>, its parameters as <c>results/{job}.json</c>, and the
/// history (id, time, model, status, parameters, files) in <c>history.db</c> (SQLite), so a restarted server still lists
/// and serves everything that finished. Thread-safe.
/// </summary>
public sealed class ResultStore : IDisposable
{
    private readonly object _gate = new();
    private readonly SqliteConnection _db;

    /// <summary>Opens (creating when needed) the store in <paramref name="dataDir"/>.</summary>
    public ResultStore(string dataDir)
    {
        ResultsDir = Path.Combine(dataDir, "results");
        Directory.CreateDirectory(ResultsDir);
        _db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(dataDir, "history.db"), Pooling = false }.ToString());
        _db.Open();
        // write-ahead log, no fsync per commit: a finished job survives a crash or restart of the server (not a power cut)
        Execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
        Execute("""
            CREATE TABLE IF NOT EXISTS jobs (
              id TEXT PRIMARY KEY, created TEXT NOT NULL, model TEXT NOT NULL, status TEXT NOT NULL,
              parameters TEXT NOT NULL, files TEXT NOT NULL, error TEXT, seconds REAL NOT NULL)
            """);
    }

    /// <summary>The folder of the images and parameter files.</summary>
    public string ResultsDir { get; }

    /// <summary>
    /// Writes <paramref name="images"/> and the parameters, then records the job; returns the image file names.
    /// </summary>
    public IReadOnlyList<string> Save(string id, DateTimeOffset created, string model, string status, JsonObject parameters,
        IReadOnlyList<byte[]> images, string? error, double seconds)
    {
        var files = new List<string>();
        for (int i = 0; i < images.Count; i++)
        {
            string name = $"{id}-{i}.png";
            File.WriteAllBytes(Path.Combine(ResultsDir, name), images[i]);
            files.Add(name);
        }
        var filesJson = new JsonArray(files.Select(f => (JsonNode)JsonValue.Create(f)!).ToArray());
        if (images.Count > 0)
            File.WriteAllText(Path.Combine(ResultsDir, id + ".json"), parameters.ToJsonString());
        lock (_gate)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "INSERT OR REPLACE INTO jobs VALUES ($id, $created, $model, $status, $parameters, $files, $error, $seconds)";
            cmd.Parameters.AddWithValue("$id", id);
            cmd.Parameters.AddWithValue("$created", created.ToString("O", CultureInfo.InvariantCulture));
            cmd.Parameters.AddWithValue("$model", model);
            cmd.Parameters.AddWithValue("$status", status);
            cmd.Parameters.AddWithValue("$parameters", parameters.ToJsonString());
            cmd.Parameters.AddWithValue("$files", filesJson.ToJsonString());
            cmd.Parameters.AddWithValue("$error", (object?)error ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$seconds", seconds);
            cmd.ExecuteNonQuery();
        }
        return files;
    }

    /// <summary>One finished job as the API shows it (<c>id</c>, <c>status</c>, <c>model</c>, <c>created</c>, <c>parameters</c>, <c>images</c>, <c>error</c>), or null.</summary>
    public JsonObject? Get(string id) => Query("SELECT * FROM jobs WHERE id = $p", id).FirstOrDefault();

    /// <summary>The newest finished jobs first, at most <paramref name="limit"/>.</summary>
    public IReadOnlyList<JsonObject> History(int limit) => Query("SELECT * FROM jobs ORDER BY created DESC LIMIT $p", limit);

    /// <summary>The path of a result image, or null when <paramref name="file"/> is not one (names only, no folders).</summary>
    public string? ImagePath(string file)
    {
        if (file.Length > 64 || !file.EndsWith(".png", StringComparison.Ordinal) || file.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '.')))
            return null;
        string path = Path.Combine(ResultsDir, file);
        return File.Exists(path) ? path : null;
    }

    private List<JsonObject> Query(string sql, object parameter)
    {
        var rows = new List<JsonObject>();
        lock (_gate)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = sql;
            cmd.Parameters.AddWithValue("$p", parameter);
            using var r = cmd.ExecuteReader();
            while (r.Read())
                rows.Add(new JsonObject
                {
                    ["id"] = r.GetString(0),
                    ["created"] = r.GetString(1),
                    ["model"] = r.GetString(2),
                    ["status"] = r.GetString(3),
                    ["parameters"] = JsonNode.Parse(r.GetString(4)),
                    ["images"] = JsonNode.Parse(r.GetString(5)),
                    ["error"] = r.IsDBNull(6) ? null : r.GetString(6),
                    ["seconds"] = r.GetDouble(7),
                });
        }
        return rows;
    }

    private void Execute(string sql)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    /// <summary>Closes the database.</summary>
    public void Dispose()
    {
        lock (_gate) _db.Dispose();
    }
}
