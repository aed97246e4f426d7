using System.Security.Cryptography;
using System.Text;

namespace DiffusersSharp.Tests.Hub;

/// <summary>A repository served by <see cref="FakeHubServer"/>: commits of files, branches, optional gating.</summary>
public sealed class FakeRepo(string id)
{
    public string Id { get; } = id;

    /// <summary>When set, resolve requests need <c>Authorization: Bearer {RequiredToken}</c>.</summary>
    public string? RequiredToken { get; set; }

    public Dictionary<string, string> Branches { get; } = new();

    public Dictionary<string, Dictionary<string, byte[]>> Commits { get; } = new();

    /// <summary>Adds a commit (its sha is derived from the content) and points <paramref name="branch"/> at it.</summary>
    public string AddCommit(Dictionary<string, byte[]> files, string branch = "main")
    {
        using var sha = SHA1.Create();
        var sb = new StringBuilder(Id);
        foreach (var (name, bytes) in files.OrderBy(f => f.Key, StringComparer.Ordinal))
            sb.Append(name).Append(Convert.ToHexStringLower(SHA256.HashData(bytes)));
        string commit = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(sb.ToString())));
        Commits[commit] = files;
        Branches[branch] = commit;
        return commit;
    }

    /// <summary>All files of a folder (e.g. tests/golden/tiny-ddpm), as one commit on main.</summary>
    public static FakeRepo FromFolder(string id, string folder, out string commit)
    {
        var repo = new FakeRepo(id);
        var files = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(folder, f).Replace('\\', '/'), File.ReadAllBytes);
        commit = repo.AddCommit(files);
        return repo;
    }

    /// <summary>Weights are LFS files (etag = SHA-256, served through the CDN redirect); the rest are git blobs.</summary>
    public static bool IsLfs(string path) => path.EndsWith(".safetensors", StringComparison.Ordinal) || path.EndsWith(".bin", StringComparison.Ordinal);

    public static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>The git blob id: sha1("blob {len}\0" + content), the ETag the Hub sends for non-LFS files.</summary>
    public static string GitBlobSha(byte[] bytes)
    {
        byte[] header = Encoding.ASCII.GetBytes($"blob {bytes.Length}\0");
        return Convert.ToHexStringLower(SHA1.HashData([.. header, .. bytes]));
    }

    public static string Etag(string path, byte[] bytes) => IsLfs(path) ? Sha256(bytes) : GitBlobSha(bytes);
}
