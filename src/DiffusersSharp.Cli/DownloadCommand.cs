using System.CommandLine;
using DiffusersSharp.Hub;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers download &lt;id&gt; [--revision r] [--variant fp16] [--include pattern]... [--exclude pattern]...
/// [--cache-dir d] [--token t]</c>: fetches a repository into the Hugging Face cache and prints its snapshot folder
/// (the only line on stdout; progress goes to stderr). Without patterns the repository decides
/// (<see cref="HubClient.DownloadRepositoryAsync"/>): a pipeline (<c>model_index.json</c>) gets what
/// <c>from_pretrained</c> needs (diffusers' file selection: model_index.json, each component's config and one weight
/// format, <c>--variant</c> preferred), a model folder (a top-level <c>config.json</c> next to diffusers/transformers
/// weights) its configs and one weight format, and any other repository (a LoRA, a textual-inversion embedding,
/// single-file checkpoints) every file of the revision, as <c>huggingface-cli download &lt;id&gt;</c> does, with one
/// stderr line saying so (<c>--variant</c> is then an error). With <c>--include</c>/<c>--exclude</c> a snapshot of the
/// files matching those fnmatch patterns. The endpoint is <c>HF_ENDPOINT</c>; <c>HF_HUB_OFFLINE=1</c> only resolves
/// what is already cached.
/// </summary>
public static class DownloadCommand
{
    /// <summary>Builds the command (options, arguments and handler) around <paramref name="ctx"/>.</summary>
    public static Command Create(CliContext ctx)
    {
        var id = new Argument<string>("id") { Description = "Hub repository id, e.g. google/ddpm-cat-256" };
        var revision = new Option<string?>("--revision") { Description = "Branch, tag or commit sha (default: main)" };
        var variant = new Option<string?>("--variant") { Description = "Weight variant to prefer, e.g. fp16 (pipeline selection only)" };
        var include = new Option<string[]>("--include")
        {
            Description = "Download only files matching this pattern (repeatable; fnmatch, e.g. 'unet/*')", DefaultValueFactory = _ => [],
        };
        var exclude = new Option<string[]>("--exclude")
        {
            Description = "Skip files matching this pattern (repeatable; fnmatch, e.g. '*.bin')", DefaultValueFactory = _ => [],
        };
        var cacheDir = CacheCommand.CacheDirOption();
        var token = new Option<string?>("--token") { Description = "Hub token for private or gated repos (default: HF_TOKEN or the saved token)" };
        var cmd = new Command("download", "Download a model from the Hugging Face Hub into the cache and print its snapshot folder")
        {
            id, revision, variant, include, exclude, cacheDir, token,
        };
        cmd.SetAction(pr => Execute(ctx, new Request(pr.GetValue(id)!, pr.GetValue(revision), pr.GetValue(variant),
            pr.GetValue(include) ?? [], pr.GetValue(exclude) ?? [], pr.GetValue(cacheDir), pr.GetValue(token))));
        return cmd;
    }

    /// <summary>The parsed options of one <c>download</c> call.</summary>
    public sealed record Request(string Id, string? Revision, string? Variant, string[] Include, string[] Exclude, string? CacheDir, string? Token);

    /// <summary>Downloads what <paramref name="r"/> asks into the Hub cache; returns the exit code.</summary>
    public static int Execute(CliContext ctx, Request r)
    {
        HubRepoId.Validate(r.Id);
        if (r.Revision is not null) HubRepoId.ValidateRevision(r.Revision);
        bool patterns = r.Include.Length > 0 || r.Exclude.Length > 0;
        if (patterns && r.Variant is not null)
            throw new UserException("--variant selects weights in diffusers' pipeline file selection; it cannot be combined with --include/--exclude "
                                    + "(use a pattern such as '*.fp16.safetensors' instead)");
        if (r.Include.Concat(r.Exclude).Any(string.IsNullOrWhiteSpace))
            throw new UserException("--include/--exclude: empty pattern");

        var settings = HubSettings.FromEnvironment(token: r.Token, cacheDir: CacheCommand.FullCacheDir(r.CacheDir));
        using var client = new HubClient(settings);
        if (patterns)
        {
            string snapshot = DownloadProgressDisplay.Run(ctx, progress =>
                client.SnapshotDownloadAsync(r.Id, r.Revision, r.Include.Length > 0 ? r.Include : null, r.Exclude.Length > 0 ? r.Exclude : null,
                                             localFilesOnly: false, token: null, progress, ctx.CancellationToken));
            if (!Directory.EnumerateFiles(snapshot, "*", SearchOption.AllDirectories).Any())
                throw new UserException($"no file of {r.Id}@{r.Revision ?? "main"} matches "
                                        + string.Join(" ", r.Include.Select(p => $"--include '{p}'").Concat(r.Exclude.Select(p => $"--exclude '{p}'")))
                                        + "; nothing was downloaded");
            ctx.Out.WriteLine(snapshot);
            return CliApp.Ok;
        }

        var download = DownloadProgressDisplay.Run(ctx, progress =>
            client.DownloadRepositoryAsync(r.Id, r.Revision, r.Variant, localFilesOnly: false, token: null, progress, ctx.CancellationToken));
        if (download.Layout == RepoLayout.Other)
            ctx.Error.WriteLine($"{r.Id} is neither a diffusers pipeline (model_index.json) nor a model folder (config.json next to diffusers/transformers weights): "
                                + $"downloaded every file of the revision ({download.Files.Count} in all), as `huggingface-cli download {r.Id}` does");
        ctx.Out.WriteLine(download.Folder);
        return CliApp.Ok;
    }
}
