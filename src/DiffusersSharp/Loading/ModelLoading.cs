using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Loading;

/// <summary>
/// The steps every model's <c>FromPretrained</c> / <c>SavePretrained</c> shares, generic over
/// <see cref="nn.Module"/>: resolve the folder (<see cref="PretrainedLocator"/>), read <c>config.json</c>,
/// let the model build itself from the config, read the weights (<see cref="WeightLoader.ReadFolder"/>) and
/// copy them in (<see cref="LoadWeights"/>: every parameter required, tensors the model lacks left out with a warning);
/// and the reverse, written atomically.
/// </summary>
public static class ModelLoading
{
    /// <summary>A diffusers model's config file name in its folder.</summary>
    public const string ConfigName = "config.json";
    /// <summary>
    /// A diffusers model's weights file name without extension (<c>.safetensors</c>, <c>.bin</c>, variant and shard
    /// suffixes added).
    /// </summary>
    public const string WeightsName = "diffusion_pytorch_model";

    /// <summary>
    /// <c>Model.FromPretrained</c> in one call: resolve <paramref name="idOrPath"/> (+ <paramref name="subfolder"/>) with
    /// <see cref="PretrainedLocator"/>, read its config as <typeparamref name="TConfig"/>, build the model with
    /// <paramref name="create"/> in the options' dtype, its weight layers left uninitialised for the load (<see cref="ModelBuild"/>, restored after,
    /// also on failure), move it to the options' device, load the
    /// <see cref="LoadOptions.Variant"/> weights of <paramref name="format"/> (default <see cref="CheckpointFormat.Diffusers"/>;
    /// converted to that dtype, safetensors streamed: <see cref="LoadWeights"/>) and put it in eval mode. With <paramref name="expectedClassName"/>, a config whose <c>_class_name</c> names another
    /// class is refused. <paramref name="prepareWeights"/> may rename, fold or drop keys (aliases) before the strict load.
    /// </summary>
    public static TModel FromPretrained<TConfig, TModel>(string idOrPath, string? subfolder, LoadOptions? options,
        Func<TConfig, TModel> create, CheckpointFormat? format = null, string? expectedClassName = null,
        Action<TModel, IDictionary<string, Tensor>>? prepareWeights = null)
        where TConfig : DiffusersConfig where TModel : nn.Module =>
        FromPretrained<TConfig, TModel>(idOrPath, subfolder, options, (config, _) => create(config), format, expectedClassName, prepareWeights);

    /// <summary>
    /// As above, with <paramref name="create"/> also given the config file's path (for error messages that name it).
    /// </summary>
    public static TModel FromPretrained<TConfig, TModel>(string idOrPath, string? subfolder, LoadOptions? options,
        Func<TConfig, string, TModel> create, CheckpointFormat? format = null, string? expectedClassName = null,
        Action<TModel, IDictionary<string, Tensor>>? prepareWeights = null)
        where TConfig : DiffusersConfig where TModel : nn.Module
    {
        options ??= LoadOptions.Default;
        string folder = PretrainedLocator.Resolve(idOrPath, subfolder, options);
        string configPath = Path.Combine(folder, ConfigName);
        var config = ConfigJson.Read<TConfig>(configPath);
        if (expectedClassName is not null && config.ClassName is { } cls && cls != expectedClassName)
        {
            throw new ConfigException($"{configPath}: config key '_class_name' is '{cls}', expected '{expectedClassName}'")
            { FilePath = configPath, Key = "_class_name" };
        }
        // built in the load dtype (never a float32 model first), the weights uninitialised: the strict load overwrites them all
        var model = ModelBuild.Run(options.Dtype, forCheckpoint: true, () => create(config, configPath));
        try
        {
            if (options.Device is { } device) model.to(device);
            if (options.Dtype is { } dt) model.to(dt); // a no-op for what the build already made in dt
            LoadWeights(model, folder, format, options.Variant, prepareWeights is null ? null : w => prepareWeights(model, w),
                options.Log ?? DefaultLog);
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Reads <c>{folder}/config.json</c> as <typeparamref name="T"/> (diffusers' defaults for absent keys).</summary>
    public static T ReadConfig<T>(string folder) where T : DiffusersConfig =>
        ConfigJson.Read<T>(Path.Combine(folder, ConfigName));

    /// <summary>
    /// Where a model load's warnings go when <see cref="LoadOptions.Log"/> is null: standard error, as diffusers' logger
    /// writes its warnings (and as the Stable Diffusion pipelines' default log).
    /// </summary>
    public static void DefaultLog(string message) => Console.Error.WriteLine("warning: " + message);

    /// <summary>
    /// Reads the folder's weights in <paramref name="format"/> (default <see cref="CheckpointFormat.Diffusers"/>;
    /// safetensors preferred, .bin, shards, <paramref name="variant"/>) and loads them
    /// into <paramref name="module"/>, converting to each parameter's dtype and device: a missing tensor or a shape mismatch
    /// is an error naming the file and the key; tensors the module does not have are left out with one warning to
    /// <paramref name="log"/> (default <see cref="DefaultLog"/>) naming the file, their count and the first of them, as
    /// diffusers' <c>from_pretrained</c> warns and loads the rest. Safetensors (a file, or
    /// shards that all are) are streamed: <paramref name="prepareWeights"/> and the checks see shape-and-dtype
    /// placeholders (meta tensors), then each parameter is filled from the memory map and those pages released
    /// (<see cref="SafetensorsWeights"/>), so the load never holds a second copy of the weights. Pickled <c>.bin</c>
    /// files are read whole; the read CPU tensors are freed before returning (also those <paramref name="prepareWeights"/>
    /// removes or adds). Returns the weight file (or shard index) that was read.
    /// </summary>
    public static string LoadWeights(nn.Module module, string folder, CheckpointFormat? format = null, string? variant = null,
        Action<IDictionary<string, Tensor>>? prepareWeights = null, Action<string>? log = null)
    {
        string file = WeightLoader.FindWeights(folder, format ?? CheckpointFormat.Diffusers, variant);
        using var stream = SafetensorsWeights.CanStream(file) ? SafetensorsWeights.Open(file) : null;
        var weights = stream is null ? WeightLoader.ReadFile(file) : new Dictionary<string, Tensor>(stream.Placeholders, StringComparer.Ordinal);
        var all = weights.Values.ToList();
        try
        {
            prepareWeights?.Invoke(weights);
            all.AddRange(weights.Values);
            WeightLoader.LoadWith(module, weights, file, stream is null ? WeightLoader.CopyWeight : stream.CopyInto,
                stream is null ? null : stream.StoredDType, log ?? DefaultLog);
        }
        finally
        {
            all.AddRange(weights.Values);
            foreach (var t in new HashSet<Tensor>(all, ReferenceEqualityComparer.Instance)) t.Dispose();
        }
        return file;
    }

    /// <summary>
    /// Writes the module's state dict as <c>{folder}/{name}[.{variant}].safetensors</c> (<paramref name="format"/>'s
    /// name, default <see cref="CheckpointFormat.Diffusers"/>) with metadata
    /// <c>{"format": "pt"}</c> (what diffusers writes and reads back). Atomic: a failure leaves an existing file
    /// as it was. Returns the path written.
    /// </summary>
    public static string SaveWeights(nn.Module module, string folder, CheckpointFormat? format = null, string? variant = null)
    {
        string path = Path.Combine(CreateFolder(folder), (format ?? CheckpointFormat.Diffusers).WeightFileName(variant));
        Guard(path, () => WriteWeights(module, path));
        return path;
    }

    /// <summary>The <c>_diffusers_version</c> written into saved configs: the diffusers release this library ports.</summary>
    public const string DiffusersVersion = "0.25.1";

    /// <summary>
    /// <c>SavePretrained</c>: <c>config.json</c> (<see cref="ConfigJson"/>, unknown keys kept) and the safetensors weights
    /// of <paramref name="format"/> (default <see cref="CheckpointFormat.Diffusers"/>). A diffusers config gets
    /// <c>_class_name</c> = the module's class name and <c>_diffusers_version</c> = <see cref="DiffusersVersion"/>, as
    /// diffusers does; a transformers config is written without those keys unless it came with them, and with
    /// <c>architectures</c> = [the module's class name] and <c>torch_dtype</c> = its weights' dtype, as transformers'
    /// <c>save_pretrained</c> writes them (transformers warns about unused checkpoint tensors only for a class its
    /// <c>architectures</c> names). Both files are
    /// written to temporary files first and renamed into place only when both are complete, so a failure never deletes
    /// or truncates what was there.
    /// </summary>
    public static void SavePretrained<TConfig>(nn.Module module, TConfig config, string folder,
        CheckpointFormat? format = null, string? variant = null) where TConfig : DiffusersConfig
    {
        format ??= CheckpointFormat.Diffusers;
        CreateFolder(folder);
        string configPath = Path.Combine(folder, ConfigName);
        string weightsPath = Path.Combine(folder, format.WeightFileName(variant));
        string tag = Guid.NewGuid().ToString("N");
        string configTmp = $"{configPath}.{tag}.tmp", weightsTmp = $"{weightsPath}.{tag}.tmp";
        try
        {
            Guard(configTmp, () => File.WriteAllText(configTmp, ConfigText(module, config, format) + "\n"));
            Guard(weightsTmp, () => WriteWeights(module, weightsTmp));
            Guard(weightsPath, () => File.Move(weightsTmp, weightsPath, overwrite: true));
            Guard(configPath, () => File.Move(configTmp, configPath, overwrite: true));
        }
        finally
        {
            foreach (var tmp in new[] { configTmp, weightsTmp })
                try { if (File.Exists(tmp)) File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static string ConfigText<TConfig>(nn.Module module, TConfig config, CheckpointFormat format) where TConfig : DiffusersConfig
    {
        if (format.StampsDiffusersKeys)
            return ConfigJson.Serialize(config with { ClassName = module.GetType().Name, DiffusersVersion = DiffusersVersion });
        var node = JsonNode.Parse(ConfigJson.Serialize(config))!.AsObject();
        foreach (var key in new[] { "_class_name", "_diffusers_version" })
            if (node.TryGetPropertyValue(key, out var v) && v is null) node.Remove(key);
        // transformers' save_pretrained: config.architectures = [class name], config.torch_dtype = the weights' dtype
        node["architectures"] = new JsonArray(JsonValue.Create(module.GetType().Name));
        if (module.parameters().FirstOrDefault() is { } first && TorchDtypeName(first.dtype) is { } dtype)
            node["torch_dtype"] = dtype;
        return node.ToJsonString(ConfigJson.Options);
    }

    /// <summary>torch's name of a floating dtype, as transformers writes it in <c>torch_dtype</c> (<c>str(dtype)</c> without <c>torch.</c>).</summary>
    private static string? TorchDtypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.Float16 => "float16",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float64 => "float64",
        _ => null,
    };

    private static void WriteWeights(nn.Module module, string path)
    {
        var state = module.state_dict();
        SafetensorsFile.Save(path, state, new Dictionary<string, string> { ["format"] = "pt" });
    }

    private static string CreateFolder(string folder)
    {
        if (File.Exists(folder))
            throw new DiffusersException($"Cannot save into {folder}: it is a file, not a folder") { FilePath = folder };
        Guard(folder, () => Directory.CreateDirectory(folder));
        return folder;
    }

    private static void Guard(string path, Action write)
    {
        try { write(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffusersException($"Cannot write {path}: {e.Message}", e) { FilePath = path };
        }
    }
}
