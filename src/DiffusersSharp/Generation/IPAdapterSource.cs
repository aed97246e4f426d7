namespace DiffusersSharp.Generation;

/// <summary>
/// Where a <see cref="GenerationService"/>'s IP-Adapter comes from: diffusers' <c>load_ip_adapter(pretrained_model_name_or_path,
/// subfolder, weight_name)</c> arguments (<c>h94/IP-Adapter</c>, <c>models</c>, <c>ip-adapter_sd15.bin</c>; a folder, no
/// subfolder and a file name in it) and the revision of a Hub id (null: <c>main</c>; not the model's revision). The image
/// encoder comes from <c>{subfolder}/image_encoder</c> unless the pipeline already has one
/// (<see cref="Pipelines.StableDiffusionPipelineBase.LoadIPAdapter"/>).
/// </summary>
public sealed record IPAdapterSource(string PathOrId, string? Subfolder, string WeightName, string? Revision = null)
{
    /// <summary>The source as one path, for messages: <c>{PathOrId}[@{Revision}]/[{Subfolder}/]{WeightName}</c>.</summary>
    public override string ToString() =>
        PathOrId.TrimEnd('/', '\\') + (Revision is null ? "" : "@" + Revision) + "/"
        + (string.IsNullOrEmpty(Subfolder) ? "" : Subfolder.Trim('/') + "/") + WeightName;
}
