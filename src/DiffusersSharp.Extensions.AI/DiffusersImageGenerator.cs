using System.Globalization;
using System.Text.Json;
using DiffusersSharp.Generation;
using DiffusersSharp.Imaging;
using Microsoft.Extensions.AI;

namespace DiffusersSharp.Extensions.AI;

/// <summary>
/// <see cref="IImageGenerator"/> (Microsoft.Extensions.AI's image API) on a local Stable Diffusion model:
/// <see cref="ImageGenerationRequest.Prompt"/> is the prompt; one <see cref="ImageGenerationRequest.OriginalImages"/>
/// entry makes it image to image, and a mask (AdditionalProperties <c>mask</c>: a <see cref="DataContent"/> or PNG bytes,
/// white = repaint, or OpenAI's convention: transparent = repaint, see <see cref="MaskImage"/>) inpainting. <see cref="ImageGenerationOptions"/>: <c>Count</c>, <c>ImageSize</c> (multiples of 8),
/// <c>ModelId</c> (must be this generator's model when set), <c>MediaType</c> (<c>image/png</c> only),
/// <c>ResponseFormat</c> (<c>Data</c> only: results are <see cref="DataContent"/> PNGs). AdditionalProperties, by name:
/// <list type="bullet">
/// <item><c>seed</c> (integer; random when absent, the one used is in each result's AdditionalProperties <c>seed</c>)</item>
/// <item><c>steps</c> (integer), <c>guidance_scale</c> (number), <c>negative_prompt</c> (string)</item>
/// <item><c>scheduler</c> (a diffusers class or alias: <c>euler-a</c>, <c>dpm++2m-karras</c>, …)</item>
/// <item><c>strength</c> (number in [0, 1], image to image / inpainting), <c>mask</c> (see above)</item>
/// <item><c>padding_mask_crop</c> (integer, 0 or more; with a mask: only the area around the mask, that many pixels wider,
/// is inpainted at <c>ImageSize</c> (the model's default size when unset) and put back into the original image, which keeps
/// its size: diffusers' <c>padding_mask_crop</c>, see <see cref="GenerationRequest.PaddingMaskCrop"/>)</item>
/// <item><c>loras</c> (name → weight, or a list of names at weight 1: the <c>*.safetensors</c> files of
/// <see cref="DiffusersImageGeneratorOptions.LoraDirectory"/>)</item>
/// <item><c>freeu</c> (FreeU for this request, <see cref="GenerationRequest.FreeU"/>: a <see cref="Models.FreeUFactors"/>,
/// four numbers <c>[s1, s2, b1, b2]</c> as a .NET list or a JSON array, or the string <c>"s1,s2,b1,b2"</c>)</item>
/// <item><c>timesteps</c> (custom timesteps in descending order instead of <c>steps</c>, <see cref="GenerationRequest.Timesteps"/>:
/// integers as a .NET list, a JSON array or the string <c>"999,759,499,259"</c>; a <c>steps</c> beside them must be their
/// count)</item>
/// <item><c>ip_adapter_image</c> (the image prompt of <see cref="DiffusersImageGeneratorOptions.IPAdapter"/>: a
/// <see cref="DataContent"/> or image bytes; required when an adapter is loaded, refused when none is) and
/// <c>ip_adapter_scale</c> (number: the adapter's weight for this request, <see cref="GenerationRequest.IPAdapterScale"/>)</item>
/// </list>
/// An integer property takes any integer type, a whole number of another (<c>4.0</c>, a JSON number) or a string of digits;
/// a fraction (<c>4.5</c>), a value outside the type's range, a string of anything else or a bool is refused naming the
/// property, never rounded. A JSON string (a <see cref="JsonElement"/> of kind String, as properties deserialized from JSON
/// hold) is read as the .NET string it holds, for every property: <c>"4"</c> is 4 steps and <c>"7.5"</c> a guidance scale
/// of 7.5 in either form, as <see cref="AdditionalPropertiesDictionary{TValue}.TryGetValue{T}(string, out T)"/> converts a
/// .NET string (<see cref="IConvertible"/>, <see cref="Convert.ChangeType(object, Type, IFormatProvider)"/>) and
/// this generator's number properties read strings.
/// Cancellation is honoured within one denoising step, and while a call waits for the one before it. Runs one request at a
/// time on a thread-pool thread; the calls waiting their turn hold no thread.
/// </summary>
public sealed class DiffusersImageGenerator : IImageGenerator
{
    /// <summary>The AdditionalProperties names this generator reads.</summary>
    public const string Seed = "seed", Steps = "steps", GuidanceScale = "guidance_scale", NegativePrompt = "negative_prompt",
        Scheduler = "scheduler", Strength = "strength", Mask = "mask", Loras = "loras", PaddingMaskCrop = "padding_mask_crop",
        FreeU = "freeu", Timesteps = "timesteps", IPAdapterImage = "ip_adapter_image", IPAdapterScale = "ip_adapter_scale";

    private readonly GenerationService _service;
    private readonly DiffusersImageGeneratorOptions _options;
    private readonly bool _ownsService;
    private readonly SemaphoreSlim _turn = new(1, 1);

    /// <summary>Loads <see cref="DiffusersImageGeneratorOptions.Model"/>.</summary>
    public DiffusersImageGenerator(DiffusersImageGeneratorOptions options)
        : this(GenerationService.Load(Required(options).Model, options.LoadOptions), options, ownsService: true)
    {
        try
        {
            _service.LoraDirectory = options.LoraDirectory;
            if (options.IPAdapter is { } ipAdapter)
            {
                _service.LoadIPAdapter(ipAdapter, options.LoadOptions);
                if (options.IPAdapterScale is double scale) _service.SetIPAdapterScale(scale);
            }
        }
        catch
        {
            Dispose();   // the model it loaded
            throw;
        }
    }

    /// <summary>Serves an already loaded model (not disposed with the generator unless <paramref name="ownsService"/>).</summary>
    public DiffusersImageGenerator(GenerationService service, DiffusersImageGeneratorOptions? options = null, bool ownsService = false)
    {
        _service = service ?? throw new ArgumentNullException(nameof(service));
        _options = options ?? new DiffusersImageGeneratorOptions { Model = service.ModelId };
        _ownsService = ownsService;
        Metadata = new ImageGeneratorMetadata("diffusers-sharp", null, service.ModelId);
    }

    /// <summary>Provider "diffusers-sharp" and the model id.</summary>
    public ImageGeneratorMetadata Metadata { get; }

    /// <summary>Translates the request and options into a <see cref="GenerationRequest"/> (bad values: <see cref="ArgumentException"/> naming the property).</summary>
    public GenerationRequest ToGenerationRequest(ImageGenerationRequest request, ImageGenerationOptions? options)
    {
        ArgumentNullException.ThrowIfNull(request);
        var props = options?.AdditionalProperties;
        if (options?.ModelId is { } id && id != _service.ModelId)
            throw new ArgumentException($"ModelId '{id}': this generator serves '{_service.ModelId}'", nameof(options));
        if (options?.MediaType is { } mt && mt != "image/png")
            throw new ArgumentException($"MediaType '{mt}': only image/png is produced", nameof(options));
        if (options?.ResponseFormat is { } rf && rf != ImageGenerationResponseFormat.Data)
            throw new ArgumentException($"ResponseFormat {rf}: only Data (DataContent PNGs) is produced", nameof(options));
        var originals = request.OriginalImages?.ToList() ?? [];
        if (originals.Count > 1) throw new ArgumentException($"OriginalImages: one image at most, got {originals.Count}", nameof(request));
        Image? init = originals.Count == 1 ? Decode(originals[0], "OriginalImages") : null;
        Image? mask = props?.TryGetValue(Mask, out var m) == true && m is not null ? DecodeMask(m) : null;
        Image? ipImage = props?.TryGetValue(IPAdapterImage, out var ip) == true && ip is not null ? Decode(ip, IPAdapterImage) : null;
        var timesteps = props?.TryGetValue(Timesteps, out var ts) == true && ts is not null ? TimestepsOf(ts) : null;
        int? steps = Get<int?>(props, Steps);
        // custom timesteps set the steps (diffusers' timesteps replace num_inference_steps), as the server and the CLI rule
        if (timesteps is { Count: > 0 } && steps is int st && st != timesteps.Count)
            throw new ArgumentException($"AdditionalProperties '{Timesteps}': {timesteps.Count} custom timesteps set {timesteps.Count} steps, and '{Steps}' is {st}; leave '{Steps}' out (diffusers' timesteps replace num_inference_steps)", Timesteps);
        return new GenerationRequest
        {
            Prompt = request.Prompt ?? "",
            NegativePrompt = Get<string>(props, NegativePrompt),
            Width = options?.ImageSize?.Width,
            Height = options?.ImageSize?.Height,
            Count = options?.Count ?? 1,
            Steps = steps ?? _options.DefaultSteps,
            GuidanceScale = Get<double?>(props, GuidanceScale) ?? 7.5,
            Seed = Get<long?>(props, Seed),
            Scheduler = Get<string>(props, Scheduler),
            Strength = Get<double?>(props, Strength),
            InitImage = init,
            Mask = mask,
            PaddingMaskCrop = Get<int?>(props, PaddingMaskCrop),
            Loras = Get<Dictionary<string, double>>(props, Loras),
            FreeU = props?.TryGetValue(FreeU, out var f) == true && f is not null ? FreeUFactorsOf(f) : null,
            Timesteps = timesteps,
            IPAdapterImage = ipImage,
            IPAdapterScale = Get<double?>(props, IPAdapterScale),
        };
    }

    /// <inheritdoc />
    public async Task<ImageGenerationResponse> GenerateAsync(ImageGenerationRequest request, ImageGenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var generation = ToGenerationRequest(request, options);
        try
        {
            GenerationService.Validate(generation, _options.MaxCount);
            GenerationService.ValidateLoras(generation.Loras, _service.LoraDirectory);
            GenerationService.ValidateIPAdapter(generation, _service.HasIPAdapter);
        }
        catch (DiffusersException e) { throw new ArgumentException(e.Message, nameof(options), e); }
        // waits its turn here, cancellably and without a thread (the service's own lock would block a pool thread until
        // the run before it ends, and see the cancellation only then)
        await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        GenerationResult result;
        try
        {
            result = await Task.Run(() => _service.Generate(generation, null, cancellationToken), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _turn.Release();
        }
        var contents = result.Images.Select(png => (AIContent)new DataContent(png, "image/png")
        {
            AdditionalProperties = new AdditionalPropertiesDictionary { [Seed] = result.Seed },
        }).ToList();
        return new ImageGenerationResponse(contents) { RawRepresentation = result };
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ImageGeneratorMetadata)) return Metadata;
        if (serviceType == typeof(GenerationService)) return _service;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Frees the model when this generator loaded it.</summary>
    public void Dispose()
    {
        if (_ownsService) _service.Dispose();
        _turn.Dispose();
    }

    private static DiffusersImageGeneratorOptions Required(DiffusersImageGeneratorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.Model))
            throw new ArgumentException("DiffusersImageGeneratorOptions.Model: set a pipeline folder or Hub id", nameof(options));
        return options;
    }

    private static Image Decode(object value, string name)
    {
        byte[] bytes = Bytes(value, name);
        try { return Image.LoadImage(bytes); }
        catch (DiffusersException e) { throw new ArgumentException($"{name}: {e.Message}", name, e); }
    }

    private static Image DecodeMask(object value)
    {
        byte[] bytes = Bytes(value, Mask);
        try { return MaskImage.Decode(bytes, Mask); }
        catch (DiffusersException e) { throw new ArgumentException(e.Message, Mask, e); }
    }

    private static byte[] Bytes(object value, string name) => value switch
    {
        DataContent d => d.Data.ToArray(),
        byte[] b => b,
        ReadOnlyMemory<byte> r => r.ToArray(),
        _ => throw new ArgumentException($"{name}: expected a DataContent with image bytes (or byte[]), got {value.GetType().Name}", name),
    };

    /// <summary>
    /// The <c>freeu</c> property: <see cref="Models.FreeUFactors"/>, four numbers (any .NET list of numbers, a JSON array)
    /// or a string <c>"s1,s2,b1,b2"</c>; anything else is refused naming the property (non-finite factors are refused by
    /// <see cref="GenerationService.Validate"/>, naming the factor).
    /// </summary>
    private static Models.FreeUFactors FreeUFactorsOf(object value)
    {
        if (value is Models.FreeUFactors factors) return factors;
        if (value is JsonElement { ValueKind: JsonValueKind.String } js) value = js.GetString()!;
        if (value is string text)
            return Models.FreeUFactors.TryParse(text, out var parsed) ? parsed : throw NotFourNumbers(value);
        double[]? f = null;
        try
        {
            f = value switch
            {
                JsonElement { ValueKind: JsonValueKind.Array } je => je.EnumerateArray().Select(e => e.GetDouble()).ToArray(),
                System.Collections.IEnumerable list => list.Cast<object>().Select(o => Convert.ToDouble(o, CultureInfo.InvariantCulture)).ToArray(),
                _ => null,
            };
        }
        catch (Exception e) when (e is FormatException or InvalidCastException or InvalidOperationException or OverflowException)
        {
            f = null;
        }
        if (f is not { Length: 4 }) throw NotFourNumbers(value);
        return new Models.FreeUFactors(f[0], f[1], f[2], f[3]);

        static ArgumentException NotFourNumbers(object value) => new(
            $"AdditionalProperties '{FreeU}': expected four numbers [s1, s2, b1, b2] (a list, a JSON array or \"s1,s2,b1,b2\"), got {Shown(value)}", FreeU);

        static string Shown(object value) => value switch
        {
            string s => $"'{s}'",
            JsonElement je => je.GetRawText(),
            System.Collections.IEnumerable list =>
                "[" + string.Join(", ", list.Cast<object>().Select(o => Convert.ToString(o, CultureInfo.InvariantCulture))) + "]",
            _ => $"{value.GetType().Name} {value}",
        };
    }

    /// <summary>
    /// The <c>timesteps</c> property: integers as a .NET list (whole numbers of any numeric type), a JSON array or the
    /// string <c>"T1,T2,…"</c>; anything else is refused naming the property (the scheduler checks order and range).
    /// </summary>
    private static List<long> TimestepsOf(object value)
    {
        if (value is JsonElement { ValueKind: JsonValueKind.String } js) value = js.GetString()!;
        IEnumerable<object> items = value switch
        {
            string text => text.Split(','),
            JsonElement { ValueKind: JsonValueKind.Array } je => je.EnumerateArray().Select(e => (object)e),
            System.Collections.IEnumerable list => list.Cast<object>(),
            _ => throw new ArgumentException($"AdditionalProperties '{Timesteps}': expected a list of integer timesteps (e.g. [999, 759, 499, 259]), got {value.GetType().Name} {value}", Timesteps),
        };
        return items.Select(o => Integer(o is string s ? s.Trim() : o, Timesteps, long.MinValue, long.MaxValue)).ToList();
    }

    private static T? Get<T>(AdditionalPropertiesDictionary? props, string key)
    {
        if (props is null || !props.TryGetValue(key, out var value) || value is null) return default;
        // a JSON string is the string it holds, as a .NET one is read (see the class summary)
        if (value is JsonElement { ValueKind: JsonValueKind.String } js) value = js.GetString()!;
        var target = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        if (target == typeof(int)) return (T)(object)(int)Integer(value, key, int.MinValue, int.MaxValue);
        if (target == typeof(long)) return (T)(object)Integer(value, key, long.MinValue, long.MaxValue);
        if (value is T t) return t;
        try
        {
            if (target == typeof(Dictionary<string, double>) && value is JsonElement { ValueKind: JsonValueKind.Array } list
                && list.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String))
                return (T)(object)Names(list.EnumerateArray().Select(e => e.GetString()!), key);
            if (value is JsonElement je) return (T?)je.Deserialize(target);
            if (value is IConvertible && target.IsPrimitive) return (T)Convert.ChangeType(value, target, CultureInfo.InvariantCulture);
            if (value is IDictionary<string, double> d && target == typeof(Dictionary<string, double>)) return (T)(object)new Dictionary<string, double>(d);
            if (value is IEnumerable<string> names && target == typeof(Dictionary<string, double>)) return (T)(object)Names(names, key);
        }
        catch (Exception e) when (e is InvalidCastException or FormatException or OverflowException or JsonException)
        {
            throw new ArgumentException($"AdditionalProperties '{key}': cannot read {value} as {Described(target)}", key, e);
        }
        throw new ArgumentException($"AdditionalProperties '{key}': expected {Described(target)}, got {value.GetType().Name} {value}", key);
    }

    /// <summary>
    /// A list of LoRA names (a .NET one or a JSON array of strings, as the server's <c>loras</c> takes), each at weight 1;
    /// a name given twice is refused naming the property, as the server refuses it.
    /// </summary>
    private static Dictionary<string, double> Names(IEnumerable<string> names, string key)
    {
        var weights = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var name in names)
            if (!weights.TryAdd(name, 1.0))
                throw new ArgumentException($"AdditionalProperties '{key}': '{name}' is given twice", key);
        return weights;
    }

    /// <summary>What a property of <paramref name="target"/> type takes, in words (not a generic type's CLR name).</summary>
    private static string Described(Type target) =>
        target == typeof(Dictionary<string, double>) ? "an object of names to weights or a list of names" : target.Name;

    /// <summary>
    /// An integer option's value: any integer type (<see cref="nint"/>, <see cref="Int128"/> and <see cref="System.Numerics.BigInteger"/>
    /// too), an integral number (<c>4.0</c> as a double, float, <see cref="Half"/> or decimal, or a JSON
    /// number), or a string of an integer (<c>"4"</c>, a .NET or a JSON string), within [<paramref name="min"/>, <paramref name="max"/>]. A fraction
    /// (<c>4.5</c>), NaN, infinity, a bool or any other type is refused naming the property, never rounded.
    /// </summary>
    private static long Integer(object value, string key, long min, long max)
    {
        string text = value switch
        {
            string s => $"'{s}'",
            JsonElement je => je.GetRawText(),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString() ?? "",
        };
        ArgumentException NotAnInteger() => new($"AdditionalProperties '{key}': expected an integer, got {text} (not rounded)", key);
        ArgumentException OutOfRange() => new($"AdditionalProperties '{key}': {text} is out of range ({min} to {max})", key);
        long FromDouble(double d)
        {
            if (!double.IsFinite(d) || d != Math.Floor(d)) throw NotAnInteger();
            // 2^63 is the first double above long.MaxValue; below it the conversion of a whole number is exact
            if (d < min || d >= 9223372036854775808.0) throw OutOfRange();
            return (long)d;
        }
        long whole = value switch
        {
            sbyte or byte or short or ushort or int or uint or long => Convert.ToInt64(value, CultureInfo.InvariantCulture),
            ulong u => u <= long.MaxValue ? (long)u : throw OutOfRange(),
            nint n => n,
            nuint n => (ulong)n <= long.MaxValue ? (long)n : throw OutOfRange(),
            Int128 n => n >= long.MinValue && n <= long.MaxValue ? (long)n : throw OutOfRange(),
            UInt128 n => n <= (UInt128)long.MaxValue ? (long)n : throw OutOfRange(),
            System.Numerics.BigInteger n => n >= long.MinValue && n <= long.MaxValue ? (long)n : throw OutOfRange(),
            Half h => FromDouble((double)h),
            float f => FromDouble(f),
            double d => FromDouble(d),
            decimal m when m != decimal.Truncate(m) => throw NotAnInteger(),
            decimal m => m >= long.MinValue && m <= long.MaxValue ? (long)m : throw OutOfRange(),
            string s when long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long l) => l,
            string s when System.Numerics.BigInteger.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out _) => throw OutOfRange(),
            string => throw NotAnInteger(),
            JsonElement { ValueKind: JsonValueKind.Number } je => je.TryGetInt64(out long l) ? l : je.TryGetDouble(out double d) ? FromDouble(d) : throw OutOfRange(),
            JsonElement je => throw new ArgumentException($"AdditionalProperties '{key}': expected an integer, got JSON {je.ValueKind} {text}", key),
            _ => throw new ArgumentException($"AdditionalProperties '{key}': expected an integer, got {value.GetType().Name} {text}", key),
        };
        return whole >= min && whole <= max ? whole : throw OutOfRange();
    }
}
