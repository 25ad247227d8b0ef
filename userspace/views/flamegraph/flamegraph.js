// Flame graph of a memobserve snapshot, drawn as one absolutely positioned
// <div> per visible frame. The root is at the top and callees sit below their
// callers. The data is the JSON in #profile-data, written by memobserve:
//   strings: every name and detail text, referenced by index
//   layers:  value names, in the order of each node's values
//   root:    [name index, detail index, [values], [children]]
(function () {
  'use strict';

  var ROW_HEIGHT = 18;
  // Frames narrower than this are not drawn, but their bytes still count in
  // their callers' widths and in search totals.
  var MIN_WIDTH_PX = 1;

  var data = JSON.parse(document.getElementById('profile-data').textContent);
  var graph = document.getElementById('graph');
  var details = document.getElementById('details');
  var layerSelect = document.getElementById('layer');
  var searchInput = document.getElementById('search');
  var totalText = document.getElementById('total');
  var matchedText = document.getElementById('matched');
  var emptyText = document.getElementById('empty');

  function buildNode(encoded, parent, depth) {
    var node = {
      name: data.strings[encoded[0]],
      detail: data.strings[encoded[1]],
      values: encoded[2],
      parent: parent,
      depth: depth,
      children: []
    };
    var children = encoded[3] || [];
    for (var i = 0; i < children.length; i++)
      node.children.push(buildNode(children[i], node, depth + 1));
    return node;
  }

  var root = buildNode(data.root, null, 0);
  var layer = data.layers.indexOf(data.default_layer);
  var zoomed = root;
  var searchTerm = '';

  // Same units as memobserve's text report: "1023 B", "1.50 KiB", "4.00 GiB".
  function formatBytes(bytes) {
    if (bytes < 1024)
      return bytes + ' B';
    var units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    var value = bytes / 1024;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    return value.toFixed(2) + ' ' + units[unit];
  }

  function percent(part, whole) {
    return whole > 0 ? (100 * part / whole).toFixed(1) + '%' : '0%';
  }

  // Hue from the name, so that a function keeps its colour across zooms and
  // layers: reds to yellows for code, blue for processes, grey for the root.
  function colourOf(node) {
    if (node.depth === 0)
      return 'hsl(0, 0%, 78%)';
    if (node.depth === 1)
      return 'hsl(210, 55%, 72%)';
    var hash = 0;
    for (var i = 0; i < node.name.length; i++)
      hash = (hash * 31 + node.name.charCodeAt(i)) >>> 0;
    return 'hsl(' + (hash % 55) + ', 85%, ' + (58 + (hash >>> 8) % 12) + '%)';
  }

  function isMatch(node) {
    return searchTerm !== '' && node.name.toLowerCase().indexOf(searchTerm) >= 0;
  }

  function describe(node) {
    var lines = [node.name];
    if (node.detail)
      lines.push(node.detail);
    var parts = [];
    for (var i = 0; i < data.layers.length; i++)
      parts.push(data.layers[i] + ' ' + formatBytes(node.values[i]));
    lines.push(parts.join('   '));
    lines.push(data.layers[layer] + ': ' + percent(node.values[layer], root.values[layer]) +
               ' of all, ' + percent(node.values[layer], zoomed.values[layer]) + ' of the zoomed frame');
    return lines.join('\n');
  }

  function addFrame(node, leftPx, widthPx, isAncestor) {
    var element = document.createElement('div');
    element.className = 'frame' + (isAncestor ? ' ancestor' : '') + (isMatch(node) ? ' match' : '');
    element.style.left = leftPx + 'px';
    element.style.width = widthPx + 'px';
    element.style.top = node.depth * ROW_HEIGHT + 'px';
    element.style.background = colourOf(node);
    element.setAttribute('role', 'treeitem');
    element.dataset.name = node.name;
    element.dataset.value = String(node.values[layer]);
    element.textContent = node.name;
    element.addEventListener('mouseenter', function () { details.textContent = describe(node); });
    element.addEventListener('click', function () { zoomTo(node); });
    graph.appendChild(element);
  }

  // Draws `node` and its descendants across widthPx pixels from leftPx, the
  // children of each frame side by side in proportion to their values.
  function addSubtree(node, leftPx, widthPx) {
    if (widthPx < MIN_WIDTH_PX)
      return node.depth;
    addFrame(node, leftPx, widthPx, false);
    var deepest = node.depth;
    var total = node.values[layer];
    var childLeft = leftPx;
    for (var i = 0; i < node.children.length; i++) {
      var child = node.children[i];
      if (child.values[layer] === 0)
        continue;
      var childWidth = widthPx * child.values[layer] / total;
      deepest = Math.max(deepest, addSubtree(child, childLeft, childWidth));
      childLeft += childWidth;
    }
    return deepest;
  }

  function render() {
    graph.textContent = '';
    var layerName = data.layers[layer];
    var rootTotal = root.values[layer];
    totalText.textContent = layerName + ' ' + formatBytes(rootTotal) + ' (' + rootTotal + ' bytes) in all';
    totalText.dataset.bytes = String(rootTotal);

    emptyText.hidden = rootTotal > 0;
    emptyText.textContent = 'This snapshot has no ' + layerName + ' bytes. Choose another value above.';
    if (rootTotal === 0) {
      graph.style.height = '0';
      updateMatches();
      return;
    }
    if (zoomed.values[layer] === 0)
      zoomed = root;

    var width = graph.clientWidth;
    for (var ancestor = zoomed.parent; ancestor; ancestor = ancestor.parent)
      addFrame(ancestor, 0, width, true);
    var deepest = addSubtree(zoomed, 0, width);
    graph.style.height = (deepest + 1) * ROW_HEIGHT + 'px';
    updateMatches();
  }

  function zoomTo(node) {
    zoomed = node;
    render();
  }

  // Sums the selected value over matching frames, without counting a frame
  // again below a matching caller (recursion would count it twice).
  function matchedTotal(node) {
    if (isMatch(node))
      return node.values[layer];
    var sum = 0;
    for (var i = 0; i < node.children.length; i++)
      sum += matchedTotal(node.children[i]);
    return sum;
  }

  function updateMatches() {
    if (searchTerm === '') {
      matchedText.textContent = '';
      return;
    }
    var matched = matchedTotal(root);
    matchedText.textContent = 'matched ' + formatBytes(matched) + ' (' +
                              percent(matched, root.values[layer]) + ')';
  }

  for (var i = 0; i < data.layers.length; i++) {
    var option = document.createElement('option');
    option.value = String(i);
    option.textContent = data.layers[i];
    option.selected = i === layer;
    layerSelect.appendChild(option);
  }
  layerSelect.addEventListener('change', function () {
    layer = Number(layerSelect.value);
    render();
  });
  searchInput.addEventListener('input', function () {
    searchTerm = searchInput.value.trim().toLowerCase();
    render();
  });
  document.getElementById('reset-zoom').addEventListener('click', function () { zoomTo(root); });
  document.addEventListener('keydown', function (event) {
    if (event.key === 'Escape')
      zoomTo(root);
  });
  window.addEventListener('resize', render);

  document.getElementById('heading').textContent = data.title;
  document.getElementById('snapshot-info').textContent = data.info;
  document.title = data.title;
  render();
})();
