using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

public sealed partial class AutoencoderKL
{
    public const string ConfigName = "config.json";
    public const string WeightsName = "diffusion_pytorch_model";

    /// <summary>
    /// Loads an AutoencoderKL from a model folder (<c>config.json</c> + weights), or from the
    /// <paramref name="subfolder"/> (usually "vae") of a pipeline folder. Weights:
    /// <c>diffusion_pytorch_model[.variant].safetensors</c> (or <c>.bin</c>); old attention names
    /// (<c>query</c>/<c>key</c>/<c>value</c>/<c>proj_attn</c>) are converted as diffusers does. The model is
    /// converted to <paramref name="dtype"/> / moved to <paramref name="device"/> when given and put in eval mode.
    /// </summary>
    public static AutoencoderKL FromPretrained(string idOrPath, string? subfolder = null, string? variant = null,
        ScalarType? dtype = null, Device? device = null)
    {
        string folder = subfolder is null ? idOrPath : Path.Combine(idOrPath, subfolder);
        if (!Directory.Exists(folder))
            throw new DiffusersException($"Model folder not found: {folder}") { FilePath = folder };
        string configPath = Path.Combine(folder, ConfigName);
        var config = ConfigJson.Read<AutoencoderKLConfig>(configPath);
        if (config.ClassName is { } cls && cls != nameof(AutoencoderKL))
            throw new ConfigException($"{configPath}: config key '_class_name' is '{cls}', expected '{nameof(AutoencoderKL)}'")
            { FilePath = configPath, Key = "_class_name" };

        var model = FromConfig(config, configPath);
        try
        {
            var weights = WeightLoader.ReadFolder(folder, WeightsName, variant);
            try
            {
                WeightLoader.LoadInto(model, weights, folder);
            }
            finally
            {
                foreach (var t in weights.Values) t.Dispose();
            }
            if (dtype is { } dt && device is not null) model.to(device, dt);
            else if (dtype is { } d) model.to(d);
            else if (device is not null) model.to(device);
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes <c>config.json</c> and <c>diffusion_pytorch_model.safetensors</c> (metadata format "pt") into
    /// <paramref name="directory"/>, which diffusers' <c>AutoencoderKL.from_pretrained</c> reads back.
    /// </summary>
    public void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        var config = Config with { ClassName = nameof(AutoencoderKL), DiffusersVersion = Config.DiffusersVersion ?? "0.25.1" };
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, p) in named_parameters()) tensors[name] = p;
        foreach (var (name, b) in named_buffers()) tensors.TryAdd(name, b);
        SafetensorsFile.Save(Path.Combine(directory, WeightsName + ".safetensors"), tensors,
            new Dictionary<string, string> { ["format"] = "pt" });
        ConfigJson.Write(config, Path.Combine(directory, ConfigName));
    }
}
