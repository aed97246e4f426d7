using System.Text.Json;

namespace DiffusersSharp.Hub;

/// <summary>The answer of <c>GET /api/models/{repo}/revision/{revision}</c>: the commit sha and the repository's files.</summary>
public sealed record RepoRevisionInfo(string RepoId, string Sha, IReadOnlyList<string> Files)
{
    internal static RepoRevisionInfo Parse(string json, string repoId, string url)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            string? sha = root.TryGetProperty("sha", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
            if (sha is null || !HubRepoId.IsCommitHash(sha))
                throw new HubException(HubErrorKind.Http, $"The Hub's answer for {url} has no valid commit sha ('sha': {sha ?? "missing"}).") { Url = url, RepoId = repoId };
            var files = new List<string>();
            if (root.TryGetProperty("siblings", out var sib) && sib.ValueKind == JsonValueKind.Array)
                foreach (var e in sib.EnumerateArray())
                    if (e.TryGetProperty("rfilename", out var f) && f.GetString() is { } name) files.Add(name);
            return new RepoRevisionInfo(repoId, sha, files);
        }
        catch (JsonException e)
        {
            throw new HubException(HubErrorKind.Http, $"The Hub's answer for {url} is not valid JSON: {e.Message}", e) { Url = url, RepoId = repoId };
        }
    }
}
