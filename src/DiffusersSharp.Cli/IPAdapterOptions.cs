using System.CommandLine;
using System.Globalization;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>
/// The IP-Adapter options of <c>diffusers generate</c> for Stable Diffusion 1.x/2.x and SDXL folders: <c>--ip-adapter</c> names the
/// weight file as <c>--lora</c> names one (<see cref="WeightSource"/>): a file (<c>models/ip-adapter_sd15.bin</c>, whose
/// folder's <c>image_encoder/</c> is the image encoder), or a file of a Hub repository, <c>org/name/[subfolder/]file</c>
/// (<c>h94/IP-Adapter/models/ip-adapter_sd15.safetensors</c>: diffusers' <c>load_ip_adapter("h94/IP-Adapter",
/// subfolder="models", weight_name="ip-adapter_sd15.safetensors")</c>, the encoder from <c>models/image_encoder</c>), at a
/// revision with <c>@rev</c> after the id; <c>--ip-adapter-image</c> (required with it: diffusers' <c>ip_adapter_image</c>)
/// and <c>--ip-adapter-scale</c> (<c>set_ip_adapter_scale</c>, default 1.0).
/// </summary>
public sealed class IPAdapterOptions
{
    private readonly Option<string?> _adapter = new("--ip-adapter")
    {
        Description = "IP-Adapter weight file: a file (its folder's image_encoder/ is the image encoder) or a file of a Hub repository, "
                      + "org/name/[subfolder/]file (h94/IP-Adapter/models/ip-adapter_sd15.safetensors: the encoder from models/image_encoder), "
                      + "at a revision with org/name@rev/…; Stable Diffusion 1.x/2.x and SDXL (h94/IP-Adapter/sdxl_models/ip-adapter_sdxl.safetensors)",
    };
    private readonly Option<string?> _image = new("--ip-adapter-image") { Description = "The image prompt of --ip-adapter (diffusers' ip_adapter_image)" };
    private readonly Option<double?> _scale = new("--ip-adapter-scale") { Description = "The IP-Adapter's weight (diffusers' set_ip_adapter_scale; default 1.0)" };

    /// <summary>The parsed values.</summary>
    public sealed record Values(string? Adapter = null, string? Image = null, double? Scale = null)
    {
        /// <summary>The first option given, for messages (null when none).</summary>
        public string? FirstGiven => Adapter is not null ? "--ip-adapter" : Image is not null ? "--ip-adapter-image"
            : Scale is not null ? "--ip-adapter-scale" : null;

        /// <summary>True when any IP-Adapter option was given.</summary>
        public bool Any => FirstGiven is not null;

        /// <summary>What can be checked before loading a model: the options together, the scale, the image file, the source.</summary>
        public void CheckWithoutModel()
        {
            if (!Any) return;
            if (Adapter is null) throw new UserException($"{FirstGiven} needs --ip-adapter <file|org/name/[subfolder/]file>");
            if (Image is null) throw new UserException("--ip-adapter needs --ip-adapter-image (the image prompt; diffusers' ip_adapter_image)");
            if (Scale is double s && (!double.IsFinite(s) || Math.Abs(s) > 100))
                throw new UserException($"--ip-adapter-scale must be a number between -100 and 100, got {s}");
            if (!File.Exists(Image)) throw new UserException($"--ip-adapter-image: file not found: {Image}");
            _ = Source(Adapter);
        }
    }

    /// <summary>Creates the options.</summary>
    public static IPAdapterOptions Create() => new();

    /// <summary>Adds the options to <paramref name="cmd"/>.</summary>
    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { _adapter, _image, _scale }) cmd.Options.Add(o);
    }

    /// <summary>Reads the parsed values.</summary>
    public Values Read(ParseResult pr) => new(pr.GetValue(_adapter), pr.GetValue(_image), pr.GetValue(_scale));

    /// <summary>
    /// <c>load_ip_adapter</c>'s arguments for <paramref name="arg"/>: an existing file as its folder, no subfolder and its
    /// name; a file of a Hub repository (<c>org/name[@rev]/[subfolder/]file</c>) as the id, the subfolder (null: none), the
    /// file name and the revision (null: main). A folder or a bare Hub id, which name no file, and anything else are a
    /// <see cref="UserException"/>: diffusers' <c>load_ip_adapter</c> has no default weight name.
    /// </summary>
    public static (string PathOrId, string? Subfolder, string WeightName, string? Revision) Source(string arg)
    {
        if (File.Exists(arg))
        {
            string full = Path.GetFullPath(arg);
            return (Path.GetDirectoryName(full)!, null, Path.GetFileName(full), null);
        }
        const string Forms = "a file, or a file of a Hugging Face Hub repository org/name/[subfolder/]file (org/name@rev/… for a revision), e.g. h94/IP-Adapter/models/ip-adapter_sd15.safetensors";
        if (Directory.Exists(arg))
            throw new UserException($"--ip-adapter {arg}: a folder; name the weight file in it ({Path.Combine(arg, "ip-adapter_sd15.bin")}): diffusers' load_ip_adapter has no default weight_name");
        if (!WeightSource.Names(arg)) throw new UserException($"--ip-adapter '{arg}': file not found, and not {Forms}");
        var (id, weightName, revision) = WeightSource.Of(arg);
        if (weightName is null)
            throw new UserException($"--ip-adapter {arg}: names no weight file; give {Forms} (diffusers' load_ip_adapter has no default weight_name)");
        int slash = weightName.LastIndexOf('/');
        return slash < 0 ? (id, null, weightName, revision) : (id, weightName[..slash], weightName[(slash + 1)..], revision);
    }

    /// <summary>
    /// Loads the adapter of <paramref name="v"/> into <paramref name="pipe"/> (with the image encoder of its folder's or
    /// subfolder's <c>image_encoder/</c>), sets its scale, reports both, and returns the image prompt to pass as the
    /// pipeline's <c>ipAdapterImage</c> (none without <c>--ip-adapter</c>). A Hub id is fetched at its <c>@revision</c> into
    /// <paramref name="cacheDir"/> (null: the environment's cache).
    /// </summary>
    public static ImageInput Apply(CliContext ctx, Values v, IIPAdapterPipeline pipe, string? cacheDir)
    {
        if (v.Adapter is not { } arg) return default;
        var image = InputImage.Load(v.Image!, "--ip-adapter-image");
        var (pathOrId, subfolder, weightName, revision) = Source(arg);
        WeightSource.Load("--ip-adapter", arg, () =>
        {
            pipe.LoadIPAdapter(pathOrId, subfolder, weightName, WeightSource.LoadOptionsFor(revision, cacheDir, ctx.Warn));
            return pipe;
        });
        double scale = v.Scale ?? 1.0;
        if (v.Scale is not null) pipe.SetIPAdapterScale(scale);
        ctx.Out.WriteLine($"ip-adapter: {arg} ({pipe.IPAdapterImageProjection!.GetType().Name}, scale {scale.ToString(CultureInfo.InvariantCulture)}), image {v.Image}");
        return image;
    }

    /// <summary>
    /// Refuses the IP-Adapter options for a run of <paramref name="pipeline"/>, a class whose diffusers 0.25.1 pipeline has
    /// no <c>ip_adapter_image</c> (or that does not take it here yet).
    /// </summary>
    internal static void Refuse(Values v, string pipeline, string why)
    {
        if (v.FirstGiven is { } option) throw new UserException($"{option} is not available with {pipeline} ({why})");
    }
}
