using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffusersSharp.Generation;
using DiffusersSharp.Imaging;
using DiffusersSharp.Models;

namespace DiffusersSharp.Server;

/// <summary>
/// A parsed <c>/v1/images/generations</c>, <c>/v1/images/edits</c> or <c>/v1/jobs</c> request: OpenAI's fields
/// (<c>prompt</c>, <c>n</c>, <c>size</c>, <c>response_format</c>, <c>model</c>) and ours (<c>negative_prompt</c>,
/// <c>steps</c>, <c>guidance_scale</c>, <c>seed</c>, <c>scheduler</c>, <c>strength</c>, <c>loras</c>, <c>freeu</c>,
/// <c>timesteps</c>, <c>ip_adapter_image</c> and <c>ip_adapter_scale</c>, and for an edit with a mask
/// <c>padding_mask_crop</c>). Every refusal is an <see cref="ApiException"/> (400) naming the field.
/// </summary>
public sealed record ApiRequest(string? Model, GenerationRequest Generation, string ResponseFormat)
{
    /// <summary>Parses a JSON body.</summary>
    public static ApiRequest FromJson(string body, ServerOptions options)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(body); }
        catch (JsonException e) { throw new ApiException(400, $"the request body is not valid JSON: {e.Message}", null, "invalid_json"); }
        if (node is not JsonObject o) throw new ApiException(400, "the request body must be a JSON object", null, "invalid_json");
        string? Str(string key) => Get(o, key, n => n.GetValueKind() == JsonValueKind.String ? n.GetValue<string>() : throw Bad(key, "a string"));
        long? Int(string key) => Get<long?>(o, key, n => n.GetValueKind() == JsonValueKind.Number && n.AsValue().TryGetValue(out long v) ? v : throw Bad(key, "an integer"));
        double? Num(string key) => Get<double?>(o, key, n => n.GetValueKind() == JsonValueKind.Number ? n.GetValue<double>() : throw Bad(key, "a number"));
        // the image prompt as base64 (a data: URL too), the JSON form of the edits' multipart files
        var ipImage = Str("ip_adapter_image") is { } b64 ? DecodeImage(Base64(b64, "ip_adapter_image"), "ip_adapter_image") : null;
        return Build(options, Str("prompt"), Str("negative_prompt"), Int("n"), Str("size"), Str("response_format"), Str("model"),
            Int("steps"), Num("guidance_scale"), Int("seed"), Str("scheduler"), Num("strength"), ParseLoras(o["loras"]),
            Int("padding_mask_crop"), ParseFreeU(o["freeu"]), null, null, ParseTimesteps(o["timesteps"]), ipImage,
            Num("ip_adapter_scale"));
    }

    /// <summary>
    /// Parses a multipart form (<c>/v1/images/edits</c>): the fields as text, <c>image</c>, <c>mask</c> and
    /// <c>ip_adapter_image</c> as files (the image prompt may also be a text field of base64, as in JSON).
    /// </summary>
    public static ApiRequest FromForm(IReadOnlyDictionary<string, string> fields, byte[]? image, byte[]? mask, ServerOptions options,
        byte[]? ipAdapterImage = null)
    {
        string? Str(string key) => fields.TryGetValue(key, out var v) && v.Length > 0 ? v : null;
        long? Int(string key) => Str(key) is { } s ? long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : throw Bad(key, "an integer") : null;
        double? Num(string key) => Str(key) is { } s ? double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : throw Bad(key, "a number") : null;
        if (image is null) throw new ApiException(400, "image: an edit needs an image file (multipart field 'image')", "image");
        JsonNode? loras;
        try { loras = Str("loras") is { } l ? JsonNode.Parse(l) : null; }
        catch (JsonException) { throw Bad("loras", "a JSON object of name → weight"); }
        FreeUFactors? freeU = Str("freeu") is { } fu ? ParseFreeU(fu) : null;
        IReadOnlyList<long>? timesteps = Str("timesteps") is { } ts ? ParseTimesteps(ts) : null;
        ipAdapterImage ??= Str("ip_adapter_image") is { } b64 ? Base64(b64, "ip_adapter_image") : null;
        return Build(options, Str("prompt"), Str("negative_prompt"), Int("n"), Str("size"), Str("response_format"), Str("model"),
            Int("steps"), Num("guidance_scale"), Int("seed"), Str("scheduler"), Num("strength"), ParseLoras(loras),
            Int("padding_mask_crop"), freeU, DecodeImage(image, "image"), DecodeMask(image, mask), timesteps,
            ipAdapterImage is null ? null : DecodeImage(ipAdapterImage, "ip_adapter_image"), Num("ip_adapter_scale"));
    }

    private static ApiRequest Build(ServerOptions options, string? prompt, string? negative, long? n, string? size, string? format,
        string? model, long? steps, double? guidance, long? seed, string? scheduler, double? strength,
        IReadOnlyDictionary<string, double>? loras, long? paddingMaskCrop, FreeUFactors? freeU, Image? image, Image? mask,
        IReadOnlyList<long>? timesteps, Image? ipAdapterImage, double? ipAdapterScale)
    {
        if (prompt is null) throw new ApiException(400, "prompt: is required", "prompt");
        if (prompt.Length > options.MaxPromptChars)
            throw new ApiException(400, $"prompt: is {prompt.Length} characters long; the limit is {options.MaxPromptChars}", "prompt");
        if (negative is { Length: var nl } && nl > options.MaxPromptChars)
            throw new ApiException(400, $"negative_prompt: is {nl} characters long; the limit is {options.MaxPromptChars}", "negative_prompt");
        if (n is < 1 || n > options.MaxImages)
            throw new ApiException(400, $"n: must be between 1 and {options.MaxImages}, got {n}", "n");
        format ??= "url";
        if (format is not ("url" or "b64_json"))
            throw new ApiException(400, $"response_format: must be 'url' or 'b64_json', got '{format}'", "response_format");
        var (w, h) = ParseSize(size);
        if (steps is < 1 or > 1000) throw new ApiException(400, $"steps: must be between 1 and 1000, got {steps}", "steps");
        // custom timesteps set the steps, one per timestep (diffusers' timesteps replace num_inference_steps); a steps given
        // beside them must be their count (what the parameters of such a run echo), as the CLI refuses --steps with --timesteps
        if (timesteps is { Count: > 0 } && steps is long st && st != timesteps.Count)
            throw new ApiException(400, $"timesteps: {timesteps.Count} custom timesteps set {timesteps.Count} steps, and steps is {st}; leave steps out (diffusers' timesteps replace num_inference_steps)", "timesteps");
        // beyond an int here; a negative one is refused by GenerationService.Validate below
        if (paddingMaskCrop is < int.MinValue or > int.MaxValue)
            throw new ApiException(400, $"padding_mask_crop: must be 0 or more (a margin in pixels) and at most {int.MaxValue}, got {paddingMaskCrop}", "padding_mask_crop");
        var request = new GenerationRequest
        {
            Prompt = prompt, NegativePrompt = negative, Width = w, Height = h, Count = (int)(n ?? 1),
            Steps = (int)(steps ?? options.DefaultSteps), GuidanceScale = guidance ?? 7.5, Seed = seed, Scheduler = scheduler,
            Strength = strength, Loras = loras, InitImage = image, Mask = mask, PaddingMaskCrop = (int?)paddingMaskCrop,
            FreeU = freeU, Timesteps = timesteps, IPAdapterImage = ipAdapterImage, IPAdapterScale = ipAdapterScale,
        };
        try
        {
            GenerationService.Validate(request, options.MaxImages);
            GenerationService.ValidateLoras(request.Loras, options.LoraDir);
            GenerationService.ValidateIPAdapter(request, options.IPAdapter is not null);
        }
        catch (DiffusersException e) { throw new ApiException(400, e.Message, e.Message.Split(':')[0]); }
        return new ApiRequest(model, request, format);
    }

    /// <summary><c>WIDTHxHEIGHT</c> (or <c>auto</c> / none: the model's size); both multiples of 8.</summary>
    public static (int? Width, int? Height) ParseSize(string? size)
    {
        if (size is null or "auto") return (null, null);
        var parts = size.Split('x');
        if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int w)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int h))
            throw new ApiException(400, $"size: expected WIDTHxHEIGHT (e.g. 512x512), got '{size}'", "size");
        if (w < 8 || h < 8 || w > 4096 || h > 4096 || w % 8 != 0 || h % 8 != 0)
            throw new ApiException(400, $"size: width and height must be multiples of 8 between 8 and 4096, got {w}x{h}", "size");
        return (w, h);
    }

    private static IReadOnlyDictionary<string, double>? ParseLoras(JsonNode? node)
    {
        if (node is null) return null;
        var loras = new Dictionary<string, double>(StringComparer.Ordinal);
        void Add(string name, double weight)
        {
            if (!loras.TryAdd(name, weight)) throw new ApiException(400, $"loras: '{name}' is given twice", "loras");
        }
        switch (node)
        {
            case JsonObject o:
                foreach (var (name, value) in o)
                    Add(name, Number(value) ?? throw Bad("loras", "a JSON object of name → weight (a number)"));
                break;
            case JsonArray a:
                foreach (var e in a)
                {
                    if (e is JsonValue v && v.GetValueKind() == JsonValueKind.String) Add(v.GetValue<string>(), 1.0);
                    else if (e is JsonObject eo && eo["name"] is JsonValue nv && nv.GetValueKind() == JsonValueKind.String)
                        Add(nv.GetValue<string>(), eo["weight"] is null ? 1.0 : Number(eo["weight"]) ?? throw Bad("loras", "objects whose 'weight' is a number"));
                    else throw Bad("loras", "a list of names or {\"name\": NAME, \"weight\": NUMBER} objects");
                }
                break;
            default: throw Bad("loras", "a JSON object of name → weight, or a list of names");
        }
        return loras;

        static double? Number(JsonNode? n) => n is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<double>() : null;
    }

    /// <summary>
    /// <c>freeu</c> as JSON: <c>[s1, s2, b1, b2]</c>, four numbers (diffusers' <c>enable_freeu</c>; a number beyond a double's
    /// range is ±Infinity, which <see cref="GenerationService.Validate"/> refuses naming the factor).
    /// </summary>
    private static FreeUFactors? ParseFreeU(JsonNode? node)
    {
        if (node is null) return null;
        if (node is not JsonArray { Count: 4 } a || a.Any(e => e is not JsonValue v || v.GetValueKind() != JsonValueKind.Number))
            throw Bad("freeu", FreeUShape);
        var f = a.Select(e => double.Parse(e!.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture)).ToArray();
        return new FreeUFactors(f[0], f[1], f[2], f[3]);
    }

    /// <summary>
    /// <c>freeu</c> as a form field: the JSON list, or the four numbers separated by commas as the CLI's <c>--freeu</c>
    /// takes them (<c>0.9,0.2,1.2,1.4</c>; <c>NaN</c> and <c>Infinity</c> read as such, then refused naming the factor).
    /// </summary>
    private static FreeUFactors ParseFreeU(string text)
    {
        if (text.TrimStart().StartsWith('['))
        {
            try { return ParseFreeU(JsonNode.Parse(text))!; }
            catch (JsonException) { throw Bad("freeu", FreeUShape); }
        }
        return FreeUFactors.TryParse(text, out var factors) ? factors : throw Bad("freeu", FreeUShape);
    }

    private const string FreeUShape = "a list of 4 numbers [s1, s2, b1, b2] (e.g. [0.9, 0.2, 1.2, 1.4])";

    /// <summary><c>timesteps</c> as JSON: a list of integers (the scheduler checks their order and range when it runs them).</summary>
    private static IReadOnlyList<long>? ParseTimesteps(JsonNode? node)
    {
        if (node is null) return null;
        if (node is not JsonArray a) throw Bad("timesteps", TimestepsShape);
        var list = new List<long>(a.Count);
        foreach (var e in a)
            list.Add(e is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out long t) ? t : throw Bad("timesteps", TimestepsShape));
        return list;
    }

    /// <summary><c>timesteps</c> as a form field: the JSON list, or integers separated by commas as the CLI's <c>--timesteps</c> takes them.</summary>
    private static IReadOnlyList<long> ParseTimesteps(string text)
    {
        if (text.TrimStart().StartsWith('['))
        {
            try { return ParseTimesteps(JsonNode.Parse(text))!; }
            catch (JsonException) { throw Bad("timesteps", TimestepsShape); }
        }
        var list = new List<long>();
        foreach (var part in text.Split(','))
            list.Add(long.TryParse(part.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long t) ? t : throw Bad("timesteps", TimestepsShape));
        return list;
    }

    private const string TimestepsShape = "a list of integer timesteps in descending order (e.g. [999, 759, 499, 259])";

    /// <summary>Base64 text (or a <c>data:…;base64,</c> URL) as bytes; anything else a 400 naming <paramref name="field"/>.</summary>
    private static byte[] Base64(string text, string field)
    {
        int comma = text.StartsWith("data:", StringComparison.Ordinal) ? text.IndexOf(',', StringComparison.Ordinal) : -1;
        try { return Convert.FromBase64String(comma >= 0 ? text[(comma + 1)..] : text); }
        catch (FormatException) { throw new ApiException(400, $"{field}: must be a base64-encoded image (PNG or JPEG; a data: URL is taken too)", field); }
    }

    private static Image DecodeImage(byte[] bytes, string field)
    {
        try { return Image.LoadImage(bytes); }
        catch (Exception e) when (e is DiffusersException or ArgumentException or InvalidOperationException)
        {
            throw new ApiException(400, $"{field}: not a readable image ({e.Message})", field);
        }
    }

    /// <summary>The mask file in either convention; without one, the image's transparent area (none: image to image).</summary>
    private static Image? DecodeMask(byte[] image, byte[]? mask)
    {
        try { return mask is null ? MaskImage.FromTransparency(image) : MaskImage.Decode(mask); }
        catch (DiffusersException e) { throw new ApiException(400, e.Message, mask is null ? "image" : "mask"); }
    }

    private static T? Get<T>(JsonObject o, string key, Func<JsonNode, T> read) =>
        o[key] is { } n && n.GetValueKind() != JsonValueKind.Null ? read(n) : default;

    private static ApiException Bad(string key, string what) => new(400, $"{key}: must be {what}", key);
}
