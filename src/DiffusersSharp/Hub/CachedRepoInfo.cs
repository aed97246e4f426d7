namespace DiffusersSharp.Hub;

/// <summary>One cached repository (huggingface_hub's <c>CachedRepoInfo</c>).</summary>
/// <param name="RepoId">"org/name".</param>
/// <param name="RepoType">"model", "dataset" or "space".</param>
/// <param name="RepoPath">The <c>models--org--name</c> folder.</param>
/// <param name="SizeOnDisk">Bytes of all distinct blobs referenced by the snapshots.</param>
/// <param name="NbFiles">Number of distinct blobs.</param>
/// <param name="Revisions">The cached snapshots, sorted by commit.</param>
/// <param name="LastModified">Latest modification time of a blob (or of the folder when it has none).</param>
public sealed record CachedRepoInfo(
    string RepoId, string RepoType, string RepoPath, long SizeOnDisk, int NbFiles,
    IReadOnlyList<CachedRevisionInfo> Revisions, DateTime LastModified)
{
    /// <summary>Size as huggingface-cli prints it ("1.2M").</summary>
    public string SizeOnDiskString => HubDownloadProgress.FormatSize(SizeOnDisk);
}
