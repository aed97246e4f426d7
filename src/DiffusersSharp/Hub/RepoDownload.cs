namespace DiffusersSharp.Hub;

/// <summary>The result of <see cref="HubClient.DownloadRepositoryAsync"/>.</summary>
/// <param name="Folder">The snapshot folder, <c>snapshots/{commit}</c>.</param>
/// <param name="Layout">What the repository was taken for; null when the Hub was not asked (offline, or unreachable) and the cached snapshot was returned as it is.</param>
/// <param name="Files">The repository files the layout selected (all of them for <see cref="RepoLayout.Other"/>); empty when <paramref name="Layout"/> is null.</param>
public sealed record RepoDownload(string Folder, RepoLayout? Layout, IReadOnlyList<string> Files);
