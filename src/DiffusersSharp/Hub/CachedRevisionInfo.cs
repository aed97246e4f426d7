namespace DiffusersSharp.Hub;

/// <summary>One cached snapshot (huggingface_hub's <c>CachedRevisionInfo</c>).</summary>
/// <param name="CommitHash">The snapshot folder name.</param>
/// <param name="Refs">Branches and tags (<c>refs/</c> files) pointing at this commit.</param>
/// <param name="SizeOnDisk">Bytes of the distinct blobs this snapshot uses.</param>
/// <param name="Files">Repo file names in the snapshot ("unet/config.json").</param>
/// <param name="SnapshotPath">The <c>snapshots/{commit}</c> folder.</param>
public sealed record CachedRevisionInfo(string CommitHash, IReadOnlyList<string> Refs, long SizeOnDisk, IReadOnlyList<string> Files, string SnapshotPath);
