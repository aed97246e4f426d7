using DiffusersSharp.Hub;

namespace DiffusersSharp.Models;

/// <summary>
/// Where a component's files are for <c>FromPretrained(pathOrId, subfolder)</c>: a local folder, or a Hub
/// repository id whose <paramref name="subfolder"/> files are fetched into (or found in) the Hub cache, the
/// pattern sets tried in order until the folder is complete (e.g. safetensors weights, then .bin).
/// </summary>
internal static class ComponentSource
{
    public static string Resolve(string pathOrId, string? subfolder, string what, HubClient? hub, string? revision,
        Func<string, bool> isComplete, params string[][] patternSets)
    {
        ArgumentException.ThrowIfNullOrEmpty(pathOrId);
        if (Directory.Exists(pathOrId)) return Sub(pathOrId, subfolder, what);
        if (!HubRepoId.IsValid(pathOrId) || pathOrId.StartsWith('.') || Path.IsPathRooted(pathOrId))
            throw new DiffusersException($"{what}.FromPretrained: '{pathOrId}' is neither a folder nor a Hub repository id") { FilePath = pathOrId };

        var client = hub ?? new HubClient();
        try
        {
            string prefix = string.IsNullOrEmpty(subfolder) ? "" : subfolder.TrimEnd('/') + "/";
            string? folder = null;
            foreach (var set in patternSets)
            {
                string snapshot = client.SnapshotDownloadAsync(pathOrId, revision, set.Select(p => prefix + p).ToList())
                    .GetAwaiter().GetResult();
                folder = string.IsNullOrEmpty(subfolder) ? snapshot : Path.Combine(snapshot, subfolder);
                if (Directory.Exists(folder) && isComplete(folder)) return folder;
            }
            throw new DiffusersException(
                $"{what}.FromPretrained: {pathOrId}{(revision is null ? "" : "@" + revision)} has no usable '{subfolder}' files " +
                $"(looked for {string.Join(", ", patternSets.SelectMany(s => s).Distinct().Select(p => prefix + p))})")
            { FilePath = folder };
        }
        finally
        {
            if (hub is null) client.Dispose();
        }
    }

    private static string Sub(string path, string? subfolder, string what)
    {
        string folder = string.IsNullOrEmpty(subfolder) ? path : Path.Combine(path, subfolder);
        if (!Directory.Exists(folder))
            throw new DiffusersException($"{what}.FromPretrained: {path} has no '{subfolder}' folder") { FilePath = folder };
        return folder;
    }
}
